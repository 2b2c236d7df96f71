"""Reading tables in chunks: CSV/TSV, XLSX, JSONL, Parquet.

Each reader yields :class:`Chunk` objects of at most ``size`` rows, so memory
stays flat whatever the size of the file. Encodings and header names are
recognised by the same functions as ``xinxi train`` (``training.detect_encoding``
and ``training.find_columns``). A problem that concerns the whole file (wrong
contents for its extension, empty, unreadable) raises ``DataFileError`` naming
the file; a problem of one row (ragged, not JSON) is carried with the row, so
that the row is kept in the output with its error.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from training import DataFileError, detect_encoding

FORMATS = ("csv", "tsv", "xlsx", "jsonl", "parquet")
EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".xlsx": "xlsx",
    ".xlsm": "xlsx",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
SNIFF_BYTES = 1 << 16
ENCODING_SAMPLE = 1 << 20  # the encoding is judged on the first megabyte, as much as a file may start in ASCII
# The csv module refuses fields over 128 KB; an archive may hold a 500,000-character cell.
FIELD_LIMIT = 1 << 30


@dataclass
class Chunk:
    """Consecutive rows of a table: values in the reader's column order, and each row's problem if any."""

    start: int  # index of the first row among the file's data rows
    rows: list[list[Any]]
    problems: list[str | None]
    arrow: Any = None  # the pyarrow RecordBatch the rows came from (Parquet), to keep column types

    def __len__(self) -> int:
        return len(self.rows)


def format_of(path: Path, given: str | None, what: str = "input") -> str:
    """The format named by ``given`` (``--format``) or by the file's extension."""
    if given:
        chosen = given.lower().lstrip(".")
        if chosen not in FORMATS:
            raise DataFileError(path, [(None, f"unknown format {given!r}; choose one of {', '.join(FORMATS)}")])
        return chosen
    suffix = path.suffix.lower()
    if suffix in EXTENSIONS:
        return EXTENSIONS[suffix]
    option = "--input-format" if what == "input" else "--format"
    raise DataFileError(
        path,
        [(None, f"cannot tell the {what} format from the extension {suffix or '(none)'}; "
                f"use one of {', '.join(EXTENSIONS)} or give {option} ({'/'.join(FORMATS)})")],
    )


_LOOKS_LIKE = {
    "zip": "a ZIP archive (an XLSX workbook?)",
    "parquet": "a Parquet file",
    "ole": "an old Excel .xls workbook (save it as .xlsx)",
    "pdf": "a PDF document",
    "binary": "binary data, not text",
    "text": "text (CSV, TSV or JSON lines)",
}


def sniff(path: Path) -> str:
    """What the first bytes of a file look like: zip, parquet, ole, pdf, binary, text or empty."""
    with path.open("rb") as stream:
        head = stream.read(SNIFF_BYTES)
    if not head:
        return "empty"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        return "ole"
    if head.startswith(b"%PDF"):
        return "pdf"
    if b"\x00" in head:
        return "binary"
    return "text"


def check_contents(path: Path, fmt: str) -> None:
    """Refuse a file whose bytes are not what its format says, or that is empty."""
    if not path.is_file():
        raise DataFileError(path, [(None, "file not found" if not path.exists() else "not a file")])
    found = sniff(path)
    if found == "empty":
        raise DataFileError(path, [(None, "the file is empty (0 bytes)")])
    expected = {"xlsx": "zip", "parquet": "parquet"}.get(fmt, "text")
    if found != expected:
        raise DataFileError(
            path,
            [(None, f"the file should be {fmt.upper()} but its contents look like {_LOOKS_LIKE[found]}; "
                    "check the file, or give --input-format if the extension is wrong")],
        )


class Reader:
    """A table read in chunks. ``columns`` is the header; totals are known when the format says so."""

    columns: list[str]
    total_rows: int | None = None
    total_bytes: int | None = None

    def position(self) -> int:
        """Bytes read so far (for the progress bar when the number of rows is unknown)."""
        return 0

    def chunks(self, size: int, skip: int = 0) -> Iterator[Chunk]:
        raise NotImplementedError

    def close(self) -> None:
        return None

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _header(values: list[Any], path: Path) -> list[str]:
    """Column names: empty ones get their position (Excel's trailing columns), repeats are refused."""
    names = [str(v).strip() if v is not None and str(v).strip() else f"column_{n}" for n, v in enumerate(values, 1)]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise DataFileError(path, [(1, f"the column {name!r} appears twice in the header; rename one")])
        seen.add(name)
    return names


def _fit(values: list[Any], width: int) -> tuple[list[Any], str | None]:
    """A row cut or padded to the header's width, with the problem when it did not fit.

    Trailing empty fields beyond the header (spreadsheets write them) are no problem.
    """
    if len(values) == width:
        return values, None
    if len(values) > width:
        extra = values[width:]
        if all(v is None or v == "" for v in extra):
            return values[:width], None
        return values[:width], (
            f"ragged row: {len(values)} fields where the header has {width} "
            f"(the extra ones were dropped and the row was not scored; check its quotes and separators)"
        )
    return values + [None] * (width - len(values)), (
        f"ragged row: {len(values)} fields where the header has {width} (the row was not scored; "
        "check its quotes and separators)"
    )

class _Counted:
    """An iterator that counts what it yields (the rows a reader saw, for a resume check)."""

    def __init__(self, values: Iterable[Any]) -> None:
        self._values = iter(values)
        self.count = 0

    def __iter__(self) -> _Counted:
        return self

    def __next__(self) -> Any:
        value = next(self._values)
        self.count += 1
        return value


def _chunk_rows(rows: Iterable[Sequence[Any]], width: int, size: int, skip: int) -> Iterator[Chunk]:
    """Rows fitted to ``width`` columns (each with its problem), ``size`` at a time, after the first ``skip``."""
    start = skip
    chunk: list[list[Any]] = []
    problems: list[str | None] = []
    for values in itertools.islice(rows, skip, None):
        row, problem = _fit(list(values), width)
        chunk.append(row)
        problems.append(problem)
        if len(chunk) == size:
            yield Chunk(start, chunk, problems)
            start += len(chunk)
            chunk, problems = [], []
    if chunk:
        yield Chunk(start, chunk, problems)



class _CountingStream(io.RawIOBase):
    """A binary file that counts the bytes read through it (for progress)."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(len(buffer))
        buffer[: len(data)] = data
        self.count += len(data)
        return len(data)

    def close(self) -> None:
        self.raw.close()
        super().close()


class DelimitedReader(Reader):
    """CSV or TSV with a header row, in UTF-8 (with or without BOM) or GBK/GB18030, or ``encoding``."""

    def __init__(self, path: Path, delimiter: str, encoding: str | None = None) -> None:
        self.path = path
        self.total_bytes = path.stat().st_size
        with path.open("rb") as stream:
            head = stream.read(ENCODING_SAMPLE)
        self.encoding = encoding or detect_encoding(head, path, complete=len(head) < ENCODING_SAMPLE)
        if encoding:
            try:
                "".encode(encoding)
            except LookupError:
                reason = f"unknown encoding {encoding!r}; try utf-8, gbk or gb18030"
                raise DataFileError(path, [(None, reason)]) from None
        csv.field_size_limit(max(csv.field_size_limit(), min(sys.maxsize, FIELD_LIMIT)))
        self._raw = _CountingStream(path.open("rb"))
        self._text = io.TextIOWrapper(io.BufferedReader(self._raw), encoding=self.encoding, newline="")
        self._rows = csv.reader(self._text, delimiter=delimiter)
        first = self._next()
        while first is not None and not any(first):
            first = self._next()
        if first is None:
            raise DataFileError(path, [(None, "the file holds no header and no rows")])
        self.columns = _header(first, path)

    def _next(self) -> list[str] | None:
        try:
            return next(self._rows)
        except StopIteration:
            return None
        except UnicodeDecodeError as exc:
            raise DataFileError(
                self.path,
                [(self._rows.line_num + 1, f"bytes that are not {self.encoding} ({exc.reason}); "
                                           "give --encoding (utf-8, gbk, gb18030) or save the file as UTF-8")],
            ) from None
        except csv.Error as exc:
            raise DataFileError(self.path, [(self._rows.line_num, f"not valid CSV: {exc}")]) from None

    def position(self) -> int:
        return self._raw.count

    def chunks(self, size: int, skip: int = 0) -> Iterator[Chunk]:
        lines = iter(self._next, None)
        counted = _Counted(values for values in lines if values)  # a blank line is not a row
        yield from _chunk_rows(counted, len(self.columns), size, skip)
        if counted.count < skip:
            raise DataFileError(
                self.path, [(None, f"the file has {counted.count} rows, fewer than the {skip} already done")]
            )

    def close(self) -> None:
        self._text.close()


class JsonLinesReader(Reader):
    """One JSON object per line. The columns are every key in order of first appearance (one pass to find them)."""

    def __init__(self, path: Path, encoding: str | None = None) -> None:
        self.path = path
        self.total_bytes = path.stat().st_size
        with path.open("rb") as stream:
            head = stream.read(ENCODING_SAMPLE)
        self.encoding = encoding or detect_encoding(head, path, complete=len(head) < ENCODING_SAMPLE)
        self._count = 0
        keys: dict[str, None] = {}
        rows = 0
        with path.open("rb") as stream:
            for line in stream:
                record = self._parse(line)
                if isinstance(record, dict):
                    keys.update(dict.fromkeys(record))
                if record is not None:
                    rows += 1
        if not rows:
            raise DataFileError(path, [(None, "the file holds no items")])
        self.columns = [str(k) for k in keys] or ["text"]
        self.total_rows = rows

    def _parse(self, line: bytes) -> Any:
        """The record of a line; None for a blank line; a string saying what is wrong otherwise."""
        try:
            text = line.decode(self.encoding)
        except UnicodeDecodeError as exc:
            return f"bytes that are not {self.encoding} ({exc.reason})"
        if not text.strip():
            return None
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            return f"not valid JSON ({exc.msg} at column {exc.colno}); the row was not scored"
        if not isinstance(record, dict):
            return f"expected a JSON object, got {type(record).__name__}; the row was not scored"
        return record

    def position(self) -> int:
        return self._count

    def chunks(self, size: int, skip: int = 0) -> Iterator[Chunk]:
        rows: list[list[Any]] = []
        problems: list[str | None] = []
        start = skip
        index = 0
        with self.path.open("rb") as stream:
            for line in stream:
                self._count += len(line)
                record = self._parse(line)
                if record is None:
                    continue
                index += 1
                if index <= skip:
                    continue
                if isinstance(record, dict):
                    rows.append([record.get(c) for c in self.columns])
                    problems.append(None)
                else:
                    rows.append([None] * len(self.columns))
                    problems.append(record)
                if len(rows) == size:
                    yield Chunk(start, rows, problems)
                    start += len(rows)
                    rows, problems = [], []
        if rows:
            yield Chunk(start, rows, problems)


class WorkbookReader(Reader):
    """One sheet of an XLSX workbook, the first row its header. A workbook of several sheets needs ``sheet``."""

    def __init__(self, path: Path, sheet: str | None = None) -> None:
        import openpyxl

        self.path = path
        self.total_bytes = path.stat().st_size
        try:
            self._book = openpyxl.load_workbook(path, read_only=True, data_only=True)
        except Exception as exc:  # zipfile, openpyxl and lxml raise their own classes on broken files
            raise DataFileError(path, [(None, f"cannot read the workbook ({type(exc).__name__}): {exc}")]) from None
        names = self._book.sheetnames
        if sheet is None and len(names) > 1:
            self._book.close()
            raise DataFileError(
                path, [(None, f"the workbook has {len(names)} sheets ({', '.join(names)}); choose one with --sheet")]
            )
        if sheet is not None and sheet not in names:
            self._book.close()
            raise DataFileError(path, [(None, f"no sheet {sheet!r}; the sheets are {', '.join(names)}")])
        self._sheet = self._book[sheet or names[0]]
        self._rows = self._sheet.iter_rows(values_only=True)
        first = next(self._rows, None)
        while first is not None and all(v is None for v in first):
            first = next(self._rows, None)
        if first is None:
            self._book.close()
            raise DataFileError(path, [(None, f"the sheet {self._sheet.title!r} is empty")])
        while first and first[-1] is None:  # formatting can widen a sheet past its header
            first = first[:-1]
        self.columns = _header(list(first), path)
        max_row = self._sheet.max_row
        self.total_rows = max_row - 1 if isinstance(max_row, int) and max_row > 1 else None

    def chunks(self, size: int, skip: int = 0) -> Iterator[Chunk]:
        # A blank row is not an item (sheets end in many).
        filled = (values for values in self._rows if not all(v is None or v == "" for v in values))
        yield from _chunk_rows(filled, len(self.columns), size, skip)

    def close(self) -> None:
        self._book.close()


class ParquetReader(Reader):
    """A Parquet file, read a batch of rows at a time; its column types are kept."""

    def __init__(self, path: Path) -> None:
        import pyarrow.parquet as pq

        self.path = path
        self.total_bytes = path.stat().st_size
        try:
            self._file = pq.ParquetFile(path)
        except Exception as exc:  # pyarrow raises ArrowInvalid and OSError on broken files
            raise DataFileError(path, [(None, f"cannot read the Parquet file: {exc}")]) from None
        self.schema = self._file.schema_arrow
        self.columns = _header(list(self.schema.names), path)
        self.total_rows = self._file.metadata.num_rows
        if not self.total_rows:
            raise DataFileError(path, [(None, "the file holds no items")])

    def chunks(self, size: int, skip: int = 0) -> Iterator[Chunk]:
        seen = 0
        start = skip
        for batch in self._file.iter_batches(batch_size=size):
            if seen + batch.num_rows <= skip:
                seen += batch.num_rows
                continue
            if seen < skip:
                batch = batch.slice(skip - seen)
            seen += batch.num_rows
            columns = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
            rows = [list(values) for values in zip(*columns, strict=True)] if columns else []
            yield Chunk(start, rows, [None] * len(rows), arrow=batch)
            start += len(rows)

    def close(self) -> None:
        self._file.close()


def open_reader(
    path: Path, fmt: str, *, encoding: str | None = None, sheet: str | None = None
) -> Reader:
    """Check the file's contents against ``fmt`` and open it for reading in chunks."""
    check_contents(path, fmt)
    if sheet is not None and fmt != "xlsx":
        raise DataFileError(path, [(None, f"--sheet applies to XLSX workbooks, not {fmt.upper()}")])
    if fmt == "csv":
        return DelimitedReader(path, ",", encoding)
    if fmt == "tsv":
        return DelimitedReader(path, "\t", encoding)
    if fmt == "jsonl":
        return JsonLinesReader(path, encoding)
    if fmt == "xlsx":
        return WorkbookReader(path, sheet)
    return ParquetReader(path)


@dataclass
class Columns:
    """Which input columns hold the fields xinxi reads."""

    text: str
    title: str | None = None
    id: str | None = None
    unit: str | None = None
    date: str | None = None
    positions: dict[str, int] = field(default_factory=dict)


def choose_columns(path: Path, columns: list[str], chosen: dict[str, str | None]) -> Columns:
    """The columns named by the options, else the ones recognised by their header (标题, 正文, 编号 ...).

    Raises ``DataFileError`` listing the file's columns when a named one does not
    exist or no text column can be found.
    """
    from training import COLUMN_NAMES, find_columns

    found = find_columns(columns)
    result: dict[str, str | None] = {}
    for name in ("text", "title", "id", "unit", "date"):
        given = chosen.get(name)
        if given is not None:
            if given not in columns:
                raise DataFileError(
                    path, [(None, f"no column {given!r} (--{name}-col); the columns are {', '.join(columns)}")]
                )
            result[name] = given
        else:
            result[name] = found.get(name)
    text = result.pop("text")
    if text is None:
        raise DataFileError(
            path,
            [(None, f"no text column: name it with --text-col, or call it one of {', '.join(COLUMN_NAMES['text'])}; "
                    f"the columns are {', '.join(columns)}")],
        )
    positions = {name: columns.index(col) for name, col in {"text": text, **result}.items() if col is not None}
    return Columns(text=text, positions=positions, **result)
