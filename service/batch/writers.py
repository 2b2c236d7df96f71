"""Writing scored rows, a chunk at a time, so that an interrupted run leaves valid output.

CSV, TSV and JSONL are written in place and appended to; after each chunk the
file is flushed to disk and its length recorded, so ``--resume`` cuts off any
half-written chunk and goes on. Parquet and XLSX cannot be appended to: each
chunk becomes a Parquet part in ``OUTPUT.parts/`` (each part a valid file),
and the parts are joined into OUTPUT at the end. CSV output is UTF-8 with a
BOM, so that spreadsheet software opens it as Chinese.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import os
import shutil
import sys
from pathlib import Path
from typing import Any, BinaryIO

from model.artifact import umask_mode
from service.batch.formats import Chunk
from service.batch.scoring import PREFIX

XLSX_MAX_ROWS = 1_048_575  # Excel's 1,048,576 rows, less the header
XLSX_MAX_CELL = 32_767


def cell_text(value: Any) -> str | None:
    """A value as text for CSV, XLSX or a string column; None stays None."""
    # The common cells first, by exact type (an output row is mostly these): the
    # parent process formats every cell of every row while the workers score.
    kind = type(value)
    if kind is str or value is None:
        return value  # type: ignore[no-any-return]
    if kind is float:
        return None if value != value else repr(value)
    if kind is int:
        return str(value)
    return _other_cell_text(value)


def _other_cell_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return None if math.isnan(value) else repr(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, ensure_ascii=False, default=str)
    if hasattr(value, "tolist"):  # numpy arrays and scalars from Parquet
        return cell_text(value.tolist())
    return str(value)


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if hasattr(value, "tolist"):
        return _json_value(value.tolist())
    return cell_text(value)


def write_replacing(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary sibling and a rename, durably, with the umask's mode."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with temporary.open("wb") as stream:
        stream.write(data)
        stream.flush()
        os.fsync(stream.fileno())
    os.chmod(temporary, umask_mode())
    os.replace(temporary, path)


class Writer:
    """Writes the output table; ``commit`` makes what was written durable and returns what resume needs."""

    def write(self, chunk: Chunk, added: list[list[Any]]) -> None:
        raise NotImplementedError

    def commit(self) -> dict[str, Any]:
        raise NotImplementedError

    def finish(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        return None

    def partial(self) -> Path | None:
        """Where the rows written so far are, after an interruption."""
        return None


class StreamWriter(Writer):
    """CSV, TSV or JSONL, appended in place (or JSONL to standard output)."""

    def __init__(self, path: Path | None, fmt: str, columns: list[str], state: dict[str, Any] | None = None) -> None:
        self.path = path
        self.fmt = fmt
        self.columns = columns
        self._stdout = path is None
        self.stream: BinaryIO
        if path is None:
            self.stream = sys.stdout.buffer
        elif state is not None:
            self.stream = path.open("r+b")
            self.stream.truncate(state["bytes"])
            self.stream.seek(0, os.SEEK_END)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.stream = path.open("wb")
            if fmt in ("csv", "tsv"):
                self.stream.write(self._rows([columns]).encode("utf-8-sig"))

    def _rows(self, rows: list[list[Any]]) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter="," if self.fmt == "csv" else "\t", lineterminator="\r\n")
        writer.writerows([list(map(cell_text, row)) for row in rows])
        return buffer.getvalue()

    def write(self, chunk: Chunk, added: list[list[Any]]) -> None:
        if self.fmt == "jsonl":
            lines = [
                json.dumps(
                    {c: _json_value(v) for c, v in zip(self.columns, row + extra, strict=True)}, ensure_ascii=False
                )
                + "\n"
                for row, extra in zip(chunk.rows, added, strict=True)
            ]
            self.stream.write("".join(lines).encode("utf-8"))
        else:
            rows = [row + extra for row, extra in zip(chunk.rows, added, strict=True)]
            self.stream.write(self._rows(rows).encode("utf-8"))

    def commit(self) -> dict[str, Any]:
        self.stream.flush()
        if self._stdout:
            return {}
        os.fsync(self.stream.fileno())
        return {"bytes": self.stream.tell()}

    def finish(self) -> None:
        self.close()

    def close(self) -> None:
        if not self._stdout and not self.stream.closed:
            self.stream.close()

    def partial(self) -> Path | None:
        return self.path


def _added_type(name: str) -> Any:
    import pyarrow as pa

    if name.startswith(f"{PREFIX}p_"):
        return pa.float64()
    if name == f"{PREFIX}quality_score":
        return pa.int64()
    return pa.string()


class PartsWriter(Writer):
    """Parquet or XLSX: one Parquet part per chunk in ``OUTPUT.parts/``, joined into OUTPUT by ``finish``."""

    def __init__(
        self, path: Path, fmt: str, columns: list[str], added: list[str], input_schema: Any = None,
        state: dict[str, Any] | None = None,
    ) -> None:
        import pyarrow as pa

        self.path = path
        self.fmt = fmt
        self.parts = parts_directory(path)
        self.input_count = len(columns) - len(added)
        self.keep_types = input_schema is not None and fmt == "parquet"
        input_fields = (
            list(input_schema) if self.keep_types else [pa.field(c, pa.string()) for c in columns[: self.input_count]]
        )
        self.schema = pa.schema(input_fields + [pa.field(name, _added_type(name)) for name in added])
        self.count = 0
        if state is not None:
            self.count = state["parts"]
            for stale in self.parts.glob("part-*.parquet"):
                if int(stale.stem.split("-")[1]) >= self.count:
                    stale.unlink()
        else:
            if self.parts.exists():
                shutil.rmtree(self.parts)
            self.parts.mkdir(parents=True)

    def write(self, chunk: Chunk, added: list[list[Any]]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        arrays = []
        if self.keep_types and chunk.arrow is not None:
            arrays = list(chunk.arrow.columns)
        else:
            for i in range(self.input_count):
                arrays.append(pa.array([cell_text(row[i]) for row in chunk.rows], type=pa.string()))
        for j, field in enumerate(list(self.schema)[self.input_count:]):
            arrays.append(pa.array([extra[j] for extra in added], type=field.type))
        table = pa.Table.from_arrays(arrays, schema=self.schema)
        name = self.parts / f"part-{self.count:06d}.parquet"
        temporary = name.with_name(f".{name.name}.tmp")
        pq.write_table(table, temporary)
        with temporary.open("rb+") as stream:
            os.fsync(stream.fileno())
        os.chmod(temporary, umask_mode())
        os.replace(temporary, name)
        self.count += 1

    def commit(self) -> dict[str, Any]:
        return {"parts": self.count}

    def _part_files(self) -> list[Path]:
        return [self.parts / f"part-{n:06d}.parquet" for n in range(self.count)]

    def finish(self) -> None:
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            if self.fmt == "parquet":
                self._join_parquet(temporary)
            else:
                self._join_xlsx(temporary)
            os.chmod(temporary, umask_mode())
            os.replace(temporary, self.path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        shutil.rmtree(self.parts, ignore_errors=True)

    def _join_parquet(self, temporary: Path) -> None:
        import pyarrow.parquet as pq

        with pq.ParquetWriter(temporary, self.schema) as writer:
            for part in self._part_files():
                writer.write_table(pq.read_table(part, schema=self.schema))

    def _join_xlsx(self, temporary: Path) -> None:
        import openpyxl
        import pyarrow.parquet as pq
        from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

        names = self.schema.names
        warnings_at = names.index(f"{PREFIX}warnings")
        book = openpyxl.Workbook(write_only=True)
        sheet = book.create_sheet("xinxi")
        sheet.append(names)
        for part in self._part_files():
            table = pq.read_table(part, schema=self.schema)
            for row in zip(*(column.to_pylist() for column in table.columns), strict=True):
                cells = list(row)
                for i, value in enumerate(cells):
                    if not isinstance(value, str):
                        continue
                    value = ILLEGAL_CHARACTERS_RE.sub("", value)
                    if len(value) > XLSX_MAX_CELL:
                        value = value[:XLSX_MAX_CELL]
                        note = f"{names[i]} cut to {XLSX_MAX_CELL} characters, the most an XLSX cell holds"
                        cells[warnings_at] = "; ".join(filter(None, [cells[warnings_at], note]))
                    cells[i] = value
                sheet.append(cells)
        book.save(temporary)

    def partial(self) -> Path | None:
        return self.parts


def parts_directory(path: Path) -> Path:
    return path.with_name(path.name + ".parts")


def open_writer(
    path: Path | None, fmt: str, columns: list[str], added: list[str], *, input_schema: Any = None,
    state: dict[str, Any] | None = None,
) -> Writer:
    if fmt in ("csv", "tsv", "jsonl"):
        return StreamWriter(path, fmt, columns, state)
    assert path is not None
    path.parent.mkdir(parents=True, exist_ok=True)
    return PartsWriter(path, fmt, columns, added, input_schema, state)
