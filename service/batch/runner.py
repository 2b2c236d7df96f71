"""Scoring a whole file: read in chunks, score (here, in worker processes or on Dask), write, checkpoint.

After every chunk the output is made durable and a small resume file
(``OUTPUT.resume.json``) records how many rows are done, where the output
ends and the counts so far. ``resume=True`` checks that the input, the options
and the model are the same, cuts the output back to the last checkpoint and
goes on, so that a resumed output equals an uninterrupted run's.
"""

from __future__ import annotations

import json
import multiprocessing
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from model import Predictor, XinxiError
from model.artifact import check_format, read_manifest
from service.batch.formats import Chunk, Columns, choose_columns, format_of, open_reader
from service.batch.report import Tally, render_html
from service.batch.scoring import (
    PREFIX,
    added_columns,
    items_of,
    merge,
    score_in_order,
    score_in_worker,
    score_items,
    start_worker,
)
from service.batch.writers import XLSX_MAX_ROWS, open_writer, parts_directory, write_replacing

Progress = Callable[[int, "int | None", int, "int | None"], None]
RESUME_FORMAT = 1


class BatchError(XinxiError):
    """A batch run cannot start or go on; the message says why and what to do."""

    code = "batch_error"


class BatchInterrupted(XinxiError):
    """The run was stopped (Ctrl-C); the rows written so far are valid and ``--resume`` goes on."""

    code = "batch_interrupted"

    def __init__(self, rows: int, partial: Path | None) -> None:
        self.rows = rows
        self.partial = partial
        where = f" in {partial}" if partial else ""
        super().__init__(
            f"interrupted after {rows:,} rows; they are saved{where}. "
            "Run the same command with --resume to continue where it stopped."
        )


@dataclass
class BatchOptions:
    """How to read, score and write a file (the options of ``xinxi predict``)."""

    text_col: str | None = None
    title_col: str | None = None
    id_col: str | None = None
    unit_col: str | None = None
    date_col: str | None = None
    input_format: str | None = None
    format: str | None = None
    encoding: str | None = None
    sheet: str | None = None
    chunk_size: int = 1000
    workers: int = 1
    resume: bool = False
    engine: str = "local"
    scheduler: str | None = None
    report: Path | None = None

    def identity(self) -> dict[str, Any]:
        """The options a resumed run must share with the run it continues."""
        return {k: v for k, v in asdict(self).items()
                if k in ("text_col", "title_col", "id_col", "unit_col", "date_col", "input_format", "format",
                         "encoding", "sheet")}


@dataclass
class BatchResult:
    output: Path | None
    model_version: str
    summary: dict[str, Any]
    report: Path | None = None
    resumed_from: int = 0
    columns: list[str] = field(default_factory=list)


def resume_path(output: Path) -> Path:
    return output.with_name(output.name + ".resume.json")


def _input_identity(path: Path) -> dict[str, Any]:
    status = path.stat()
    return {"path": str(path.resolve()), "bytes": status.st_size, "mtime_ns": status.st_mtime_ns}


class LocalEngine:
    """Scores chunks in this process, or in ``workers`` processes that each load the model once."""

    def __init__(self, model_dir: Path, predictor: Predictor | None, workers: int) -> None:
        self.model_dir = model_dir
        self.workers = workers
        self.predictor = predictor
        self.pool: ProcessPoolExecutor | None = None
        if workers > 1:
            context = multiprocessing.get_context("forkserver")
            # The fork server imports the scoring code once; every worker forks from it and loads the model.
            context.set_forkserver_preload(["service.batch.scoring"])
            self.pool = ProcessPoolExecutor(
                max_workers=workers, mp_context=context, initializer=start_worker, initargs=(str(model_dir),)
            )
        elif predictor is None:
            self.predictor = Predictor.load(model_dir)

    def score(self, chunks: Iterator[Chunk], columns: Columns, topics: int) -> Iterator[tuple[Chunk, list[list[Any]]]]:
        if self.pool is None:
            assert self.predictor is not None
            for chunk in chunks:
                items, positions, errors = items_of(chunk, columns)
                yield chunk, merge(len(chunk), topics, positions, score_items(self.predictor, items), errors)
            return
        pool = self.pool
        yield from score_in_order(
            chunks, columns, topics, lambda items: pool.submit(score_in_worker, items), 2 * self.workers
        )

    def close(self) -> None:
        if self.pool is not None:
            # Waiting lets the pool's manager thread wind down before anything else forks or exits.
            self.pool.shutdown(wait=True, cancel_futures=True)


def score_file(
    input: Path,
    output: Path | None,
    options: BatchOptions,
    *,
    model_dir: Path,
    predictor: Predictor | None = None,
    progress: Progress | None = None,
    title: str | None = None,
) -> BatchResult:
    """Score every row of ``input`` into ``output`` (JSONL to standard output when None).

    Raises
    ------
    DataFileError
        The input cannot be read, or a named column does not exist.
    BatchError
        ``resume`` finds nothing to resume, or a resume file from another input, options or model.
    BatchInterrupted
        Ctrl-C; the output so far is valid and the message says how to resume.
    """
    started = time.perf_counter()
    in_format = format_of(input, options.input_format)
    out_format = format_of(output, options.format, "output") if output is not None else "jsonl"
    manifest = read_manifest(model_dir) if predictor is None else predictor.manifest
    if predictor is None:
        check_format(model_dir, manifest)  # a pickled version is refused here, not in each worker
    version = str(manifest.get("version") or model_dir.name) if predictor is None else predictor.version
    topic_labels = list(predictor.topic_labels if predictor is not None else manifest["labels"]["topics"])
    if options.resume and output is None:
        raise BatchError("--resume needs --output: there is nothing to continue on standard output")

    reader = open_reader(input, in_format, encoding=options.encoding, sheet=options.sheet)
    try:
        clash = [c for c in reader.columns if c.startswith(PREFIX)]
        if clash:
            raise BatchError(
                f"{input}: the input already has xinxi's columns ({', '.join(clash[:3])}); it looks like a scored "
                "file. Score the original, or remove the xinxi_ columns first"
            )
        columns = choose_columns(input, reader.columns, {
            "text": options.text_col, "title": options.title_col, "id": options.id_col,
            "unit": options.unit_col, "date": options.date_col,
        })
        if out_format == "xlsx" and (reader.total_rows or 0) > XLSX_MAX_ROWS:
            raise BatchError(f"{input} has {reader.total_rows:,} rows; an XLSX sheet holds at most "
                             f"{XLSX_MAX_ROWS:,}: write CSV or Parquet instead")
        added = added_columns(topic_labels)
        out_columns = reader.columns + added
        identity = {
            "format": RESUME_FORMAT, "input": _input_identity(input), "options": options.identity(),
            "output_format": out_format, "model_version": version, "columns": out_columns,
        }
        state = _load_resume(output, identity) if options.resume and output is not None else None
        done = state["rows"] if state else 0
        tally = Tally.from_dict(state["tally"]) if state else Tally(topic_labels)
        elapsed_before = tally.seconds
        writer = open_writer(
            output, out_format, out_columns, added, input_schema=getattr(reader, "schema", None),
            state=state["writer"] if state else None,
        )
        engine = _engine(options, model_dir, predictor)
        rows = done
        unit_at = columns.positions.get("unit")
        date_at = columns.positions.get("date")
        try:
            if progress:
                progress(rows, reader.total_rows, reader.position(), reader.total_bytes)
            for chunk, values in engine.score(reader.chunks(options.chunk_size, skip=done), columns, len(topic_labels)):
                writer.write(chunk, values)
                tally.add(
                    chunk.start, values,
                    [None if unit_at is None else row[unit_at] for row in chunk.rows],
                    [None if date_at is None else row[date_at] for row in chunk.rows],
                )
                rows = chunk.start + len(chunk)
                tally.seconds = elapsed_before + time.perf_counter() - started
                if output is not None:
                    checkpoint = {"rows": rows, "writer": writer.commit(), "tally": tally.to_dict()}
                    _save_resume(output, {**identity, **checkpoint})
                else:
                    writer.commit()
                if progress:
                    progress(rows, reader.total_rows, reader.position(), reader.total_bytes)
        except KeyboardInterrupt:
            raise BatchInterrupted(rows, writer.partial()) from None
        finally:
            writer.close()
            engine.close()
        writer.finish()
    finally:
        reader.close()
    tally.seconds = elapsed_before + time.perf_counter() - started
    if output is not None:
        resume_path(output).unlink(missing_ok=True)
    report = None
    if options.report is not None:
        report = options.report
        report.parent.mkdir(parents=True, exist_ok=True)
        write_replacing(report, render_html(tally, title or input.name, version).encode("utf-8"))
    return BatchResult(output, version, tally.summary(), report, done, out_columns)


def _engine(options: BatchOptions, model_dir: Path, predictor: Predictor | None) -> Any:
    if options.engine == "local":
        return LocalEngine(model_dir, predictor, max(1, options.workers))
    if options.engine == "dask":
        from service.batch.dask_engine import DaskEngine

        return DaskEngine(model_dir, options.scheduler)
    raise BatchError(f"unknown engine {options.engine!r}; choose local or dask")


def _load_resume(output: Path, identity: dict[str, Any]) -> dict[str, Any]:
    path = resume_path(output)
    if not path.is_file():
        raise BatchError(
            f"nothing to resume: {path} does not exist (the run finished, or never wrote a chunk); "
            "run again without --resume"
        )
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BatchError(f"{path} is unreadable ({exc}); run again without --resume") from None
    for key, what in (("input", "input file"), ("options", "options"), ("output_format", "output format"),
                      ("model_version", "model"), ("columns", "columns")):
        if state.get(key) != identity[key]:
            raise BatchError(
                f"cannot resume: the {what} changed since the interrupted run "
                f"({state.get(key)!r} then, {identity[key]!r} now); run again without --resume"
            )
    partial = output if "bytes" in state["writer"] else parts_directory(output)
    if not partial.exists():
        raise BatchError(f"cannot resume: the partial output {partial} is gone; run again without --resume")
    if "bytes" in state["writer"] and output.stat().st_size < state["writer"]["bytes"]:
        raise BatchError(
            f"cannot resume: {output} is shorter than the {state['writer']['bytes']:,} bytes recorded "
            "(was it changed?); run again without --resume"
        )
    return dict(state)


def _save_resume(output: Path, state: dict[str, Any]) -> None:
    write_replacing(resume_path(output), json.dumps(state, ensure_ascii=False).encode("utf-8"))
