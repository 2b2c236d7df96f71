"""Reading items from files: JSONL, CSV/TSV, plain ``text<TAB>label``, XLSX, Parquet.

Column names are matched case-insensitively against English and Chinese
headers (标题, 正文, 主题, 类型 ...). Labels may be given by name or by their
Chinese name. Every problem is reported with the file and the row (the line
of a text file, the spreadsheet row counting the header as row 1) and the
reason; by default a file with any invalid row is refused as a whole.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from model.labels import ANALYSIS, KIND_NAMES, KINDS, NEWS, TOPICS
from training.corpus import read_records, record_problems
from training.files import COLUMN_NAMES, DataFileError, decode, find_columns

SUPPORTED = (".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".txt", ".xlsx", ".xlsm", ".parquet")

_LABEL_ALIASES: dict[str, str] = {}
for _label in TOPICS + KINDS:
    _LABEL_ALIASES[_label.label.lower()] = _label.label
    _LABEL_ALIASES[_label.name] = _label.label
_LABEL_ALIASES.update({"动态": NEWS, "综合": ANALYSIS, "hot issue": "hot_issue", "热点": "hot_issue"})
_NO_TOPIC = {"", "无", "none", "null", "nan", "[]", "-", "—"}
# Only list separators: label names may contain spaces or slashes ("财经/股票").
_SPLIT = re.compile(r"\s*[,;|、，；]\s*")
_TRUE = {"true", "1", "yes", "y", "是", "已采用", "采用", "t"}
_FALSE = {"false", "0", "no", "n", "否", "未采用", "f", ""}


@dataclass
class Item:
    """One item read from a file. Labels are None when the file has no such column."""

    id: str
    text: str
    title: str = ""
    topics: list[str] | None = None
    kind: str | None = None
    unit: str | None = None
    date: str | None = None
    adopted: bool | None = None
    row: int | None = None
    source: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_input(self) -> dict[str, Any]:
        """The mapping :meth:`model.Predictor.predict` takes."""
        return {"id": self.id, "title": self.title, "text": self.text}


def read_table(path: str | Path, label_names: Sequence[str] | None = None) -> tuple[pd.DataFrame, int]:
    """Read a file into a frame of strings, with canonical column names where recognised.

    Returns the frame and the row number of its first data row (for messages).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        reason = f"unsupported file type {suffix or '(none)'}; use one of {', '.join(SUPPORTED)}"
        raise DataFileError(path, [(None, reason)])
    if not path.is_file():
        raise DataFileError(path, [(None, "file not found")])
    try:
        if suffix in (".jsonl", ".ndjson", ".json"):
            return _read_jsonl(path), 1
        if suffix in (".xlsx", ".xlsm"):
            frame = pd.read_excel(path, dtype=str, keep_default_na=False)
            return _canonical(frame, path), 2
        if suffix == ".parquet":
            frame = pd.read_parquet(path)
            return _canonical(frame.astype(object).where(frame.notna(), None), path), 1
        text = decode(path.read_bytes(), path)
        separator = "," if suffix == ".csv" else "\t"
        first = text.split("\n", 1)[0]
        if suffix != ".csv" and not _has_header(first.split("\t")):
            return _read_text_label(text, path, label_names), 1
        frame = pd.read_csv(io.StringIO(text), sep=separator, dtype=str, keep_default_na=False)
        return _canonical(frame, path), 2
    except DataFileError:
        raise
    except (ValueError, OSError, ImportError, pd.errors.ParserError) as exc:
        raise DataFileError(path, [(_row_in(exc), f"cannot read the file: {exc}")]) from exc
    except Exception as exc:  # openpyxl and pyarrow raise their own classes on broken files
        raise DataFileError(path, [(None, f"cannot read the file ({type(exc).__name__}): {exc}")]) from exc


def _row_in(exc: Exception) -> int | None:
    match = re.search(r"line (\d+)", str(exc))
    return int(match.group(1)) if match else None


def _has_header(fields: list[str]) -> bool:
    known = {name.lower() for names in COLUMN_NAMES.values() for name in names}
    return any(f.strip().lower() in known for f in fields)


def _canonical(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    renames = {column: canonical for canonical, column in find_columns(frame.columns).items()}
    frame = frame.rename(columns=renames)
    if "text" not in frame.columns:
        raise DataFileError(
            path,
            [(None, f"no text column: expected one of {', '.join(COLUMN_NAMES['text'])}; "
                    f"found {', '.join(map(str, frame.columns)) or 'no columns'}")],
        )
    return frame


def _read_jsonl(path: Path) -> pd.DataFrame:
    text = decode(path.read_bytes(), path)
    records, problems = [], []
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append((number, f"not valid JSON ({exc.msg} at column {exc.colno})"))
            continue
        if not isinstance(record, dict):
            problems.append((number, f"expected a JSON object, got {type(record).__name__}"))
            continue
        record["_row"] = number
        records.append(record)
    if problems:
        raise DataFileError(path, problems)
    # dtype=object keeps ids and labels as written (no 1 -> 1.0 when another record lacks one).
    frame = pd.DataFrame(records, dtype=object)
    if frame.empty:
        raise DataFileError(path, [(None, "the file holds no items")])
    return _canonical(frame, path)


def _read_text_label(text: str, path: Path, label_names: Sequence[str] | None) -> pd.DataFrame:
    """The common public layout: one ``text<TAB>label[,label]`` line per item."""
    rows, problems = [], []
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        parts = line.rsplit("\t", 1)
        if len(parts) != 2:
            problems.append((number, "expected text<TAB>label"))
            continue
        labels = [lab for lab in _SPLIT.split(parts[1].strip()) if lab]
        if label_names is not None:
            mapped = []
            for lab in labels:
                if lab.isdigit() and int(lab) < len(label_names):
                    mapped.append(label_names[int(lab)])
                elif lab in label_names:
                    mapped.append(lab)
                else:
                    problems.append((number, f"label {lab!r} is not in the label-names file"))
            labels = mapped
        rows.append({"text": parts[0], "topics": labels, "_row": number})
    if problems:
        raise DataFileError(path, problems)
    return pd.DataFrame.from_records(rows)


def parse_topics(value: Any) -> list[str]:
    """Topics from a cell: a list, JSON list, or names separated by commas/、/; (Chinese names too)."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return []
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.lower() in _NO_TOPIC:
            return []
        if stripped.startswith("["):
            value = json.loads(stripped)
        else:
            value = [part for part in _SPLIT.split(stripped) if part]
    if hasattr(value, "tolist"):
        value = value.tolist()
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"topics must be a list or text, got {type(value).__name__}")
    labels = []
    for entry in value:
        if not isinstance(entry, str):
            raise ValueError(f"topic {entry!r} is not text")
        labels.append(_LABEL_ALIASES.get(entry.strip().lower(), _LABEL_ALIASES.get(entry.strip(), entry.strip())))
    return list(dict.fromkeys(label for label in labels if label))


def parse_kind(value: Any) -> str | None:
    if _isnan(value) or value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise ValueError(f"kind must be text, got {type(value).__name__}")
    kind = _LABEL_ALIASES.get(value.strip().lower(), _LABEL_ALIASES.get(value.strip()))
    if kind not in KIND_NAMES:
        raise ValueError(f"kind {value!r} is not news/动态类 or analysis/综合类")
    return kind


def _parse_adopted(value: Any) -> bool | None:
    if _isnan(value):
        return None
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"adopted {value!r} is not true/false/是/否")


def load_items(
    path: str | Path | Sequence[str | Path],
    *,
    require_labels: bool = False,
    skip_invalid: bool = False,
    label_names: Sequence[str] | None = None,
    default_source: str | None = None,
) -> tuple[list[Item], list[tuple[int | None, str]]]:
    """Read items from ``path``.

    Every item gets a ``source``: the record's own ``source`` field, else the
    name of the directory it was read from (``seed`` for ``datasets/seed``),
    else the file's name without its extension.

    Parameters
    ----------
    path : str, Path or a sequence of them
        A file in one of the supported formats, a directory of ``.jsonl``
        files, or several of these read as one corpus (ids must not repeat).
        A directory with a ``SOURCES.md`` holds real items: every record must
        carry ``source`` and ``origin`` and be free of HTML and page furniture.
    require_labels : bool
        Every item must carry topics (a topics column must exist).
    skip_invalid : bool
        Drop invalid rows and return them as problems instead of refusing the file.
    label_names : sequence of str, optional
        Names for numeric labels of the ``text<TAB>label`` layout.
    default_source : str, optional
        The source of a file's records that name none (instead of the file's name).

    Returns
    -------
    items, problems
        The valid items in file order, and ``(row, reason)`` for each skipped row.

    Raises
    ------
    DataFileError
        If the file cannot be read, or holds invalid rows and ``skip_invalid`` is False.
    """
    if not isinstance(path, (str, Path)):
        return _load_several(list(path), require_labels=require_labels, skip_invalid=skip_invalid)
    path = Path(path)
    if path.is_dir():
        return _load_directory(path, require_labels=require_labels, skip_invalid=skip_invalid)
    items, problems = _load_file(path, require_labels, skip_invalid, label_names)
    for item in items:
        item.source = item.source or default_source or path.stem
    return items, problems


def _load_file(
    path: Path, require_labels: bool, skip_invalid: bool, label_names: Sequence[str] | None = None
) -> tuple[list[Item], list[tuple[int | None, str]]]:
    """The items of one file, with ``source`` only where the record gives one."""
    frame, first_row = read_table(path, label_names)
    if require_labels and "topics" not in frame.columns:
        raise DataFileError(
            path, [(None, f"no topics column: expected one of {', '.join(COLUMN_NAMES['topics'])}")]
        )
    items: list[Item] = []
    problems: list[tuple[int | None, str]] = []
    seen: dict[str, int | None] = {}
    records = frame.to_dict(orient="records")
    for position, record in enumerate(records):
        row = record.get("_row") or position + first_row
        try:
            item = _item_from(record, row, position, require_labels)
        except (ValueError, TypeError, json.JSONDecodeError) as exc:
            problems.append((row, str(exc)))
            continue
        if item.id in seen:
            problems.append((row, f"id {item.id} repeats row {seen[item.id]}"))
            continue
        seen[item.id] = row
        items.append(item)
    if problems and not skip_invalid:
        raise DataFileError(path, problems)
    if not items:
        raise DataFileError(path, problems or [(None, "the file holds no items")])
    return items, problems


def _load_directory(
    directory: Path, *, require_labels: bool, skip_invalid: bool
) -> tuple[list[Item], list[tuple[int | None, str]]]:
    """Every ``*.jsonl`` file of a directory, in name order, as one corpus."""
    files = sorted(directory.glob("*.jsonl"))
    if not files:
        raise DataFileError(directory, [(None, "the directory holds no .jsonl files")])
    if (directory / "SOURCES.md").is_file():
        records, broken = read_records(directory)
        wrong = broken + record_problems(records, real=True)
        if wrong:
            raise DataFileError(directory, [(None, str(problem)) for problem in wrong])
    items: list[Item] = []
    problems: list[tuple[int | None, str]] = []
    seen: dict[str, str] = {}
    for file in files:
        found, skipped = _load_file(file, require_labels, skip_invalid)
        problems += [(row, f"{file.name}: {reason}") for row, reason in skipped]
        for item in found:
            where = f"{file.name} row {item.row}"
            if item.id in seen:
                raise DataFileError(file, [(item.row, f"id {item.id} is already used in {seen[item.id]}")])
            seen[item.id] = where
            item.source = item.source or directory.name
            items.append(item)
    return items, problems


def _load_several(
    paths: list[str | Path], *, require_labels: bool, skip_invalid: bool
) -> tuple[list[Item], list[tuple[int | None, str]]]:
    """Several files or directories as one corpus, in the order given; ids must not repeat."""
    if not paths:
        raise DataFileError("(no data)", [(None, "no data file or directory was given")])
    items: list[Item] = []
    problems: list[tuple[int | None, str]] = []
    seen: dict[str, Path] = {}
    for path in map(Path, paths):
        found, skipped = load_items(path, require_labels=require_labels, skip_invalid=skip_invalid)
        problems += [(row, f"{path.name}: {reason}") for row, reason in skipped]
        for item in found:
            if item.id in seen:
                raise DataFileError(path, [(item.row, f"id {item.id} is already used in {seen[item.id]}")])
            seen[item.id] = path
            items.append(item)
    return items, problems


def _text_field(record: dict[str, Any], name: str) -> str:
    value = record.get(name)
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be text, got {type(value).__name__} {value!r}")
    return value


def _item_from(record: dict[str, Any], row: int, position: int, require_labels: bool = False) -> Item:
    text = _text_field(record, "text")
    if not text.strip():
        raise ValueError("text is empty")
    if require_labels and _missing(record.get("topics")):
        raise ValueError("topics is missing (write [] or leave the cell empty for an item with no topic)")
    raw_id = record.get("id")
    item_id = str(raw_id).strip() if raw_id not in (None, "") and not _isnan(raw_id) else f"row-{row}"
    extra = {k: v for k, v in record.items() if k not in COLUMN_NAMES and k != "_row"}
    return Item(
        id=item_id,
        text=text,
        title=_text_field(record, "title"),
        topics=None if _missing(record.get("topics")) else parse_topics(record.get("topics")),
        kind=parse_kind(record.get("kind")) if "kind" in record else None,
        unit=_text_field(record, "unit") or None,
        date=_optional_str(record.get("date")),
        adopted=_parse_adopted(record.get("adopted")) if "adopted" in record else None,
        row=row,
        source=_optional_str(extra.pop("source", None)),
        extra=extra,
    )


def _optional_str(value: Any) -> str | None:
    if value is None or _isnan(value) or (isinstance(value, str) and not value.strip()):
        return None
    return str(value)[:10] if hasattr(value, "isoformat") else str(value)


def _missing(value: Any) -> bool:
    """A label cell that was not given at all (absent key, JSON null, empty Parquet cell)."""
    return value is None or _isnan(value)


def _isnan(value: Any) -> bool:
    return isinstance(value, float) and pd.isna(value)


def topic_set(items: Iterable[Item]) -> list[str]:
    """Topics that occur in ``items``, ANNOTATION.md's first and in its order, then others sorted."""
    seen = {label for item in items for label in (item.topics or [])}
    known = [t.label for t in TOPICS if t.label in seen]
    return known + sorted(seen - set(known))
