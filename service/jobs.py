"""Batch jobs of the API: files kept under the data directory, scored one at a time by a background thread.

Each job is a directory ``DATA_DIR/jobs/<id>/`` holding ``job.json`` (state,
progress, summary), the upload as ``input.<ext>``, the result as
``output.<ext>`` and ``report.html``. Nothing of the uploaded file's name is
used in a path: it is kept in ``job.json`` only, to name the download. A job
that was queued or running when the service stopped is picked up again at the
next start and resumes from its last checkpoint, so jobs and results survive
a restart.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import queue
import re
import shutil
import threading
import time
import unicodedata
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from model import Predictor, XinxiError
from service.batch import BatchError, BatchOptions, resume_path, score_file
from service.batch.writers import write_replacing

log = logging.getLogger("xinxi.service")

JOB_ID = re.compile(r"^[0-9a-f]{32}$")
EXTENSIONS = {"csv": "csv", "tsv": "tsv", "xlsx": "xlsx", "jsonl": "jsonl", "parquet": "parquet"}
PROGRESS_EVERY = 0.5  # seconds between writes of job.json while a job runs
OPTION_NAMES = ("text_col", "title_col", "id_col", "unit_col", "date_col", "sheet", "encoding")


class JobStopping(Exception):
    """Raised inside a running job when the service shuts down; the job resumes at the next start."""


def display_name(name: str | None) -> str:
    """The uploaded file's name, reduced to something safe to show and to put in a download header."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = "".join(ch for ch in unicodedata.normalize("NFC", base) if ch.isprintable() and ch not in '"<>|:*?')
    return base.strip(" .")[:120] or "upload"


class JobStore:
    """The jobs under ``root`` (``DATA_DIR/jobs``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def directory(self, job_id: str) -> Path | None:
        """The directory of a job, or None for an id that is malformed or unknown."""
        if not JOB_ID.match(job_id):
            return None
        path = self.root / job_id
        return path if (path / "job.json").is_file() else None

    def create(self, filename: str, input_format: str, output_format: str, options: dict[str, Any]) -> dict[str, Any]:
        job_id = uuid.uuid4().hex
        directory = self.root / job_id
        directory.mkdir(parents=True)
        now = _now()
        job = {
            "id": job_id, "state": "uploading", "filename": display_name(filename), "created_at": now,
            "updated_at": now, "input_format": input_format, "output_format": output_format,
            "options": {k: options.get(k) for k in OPTION_NAMES}, "rows": 0, "total_rows": None,
            "progress": 0.0, "summary": None, "error": None, "model_version": None,
        }
        self.save(job)
        return job

    def input_path(self, job: dict[str, Any]) -> Path:
        return self.root / job["id"] / f"input.{EXTENSIONS[job['input_format']]}"

    def output_path(self, job: dict[str, Any]) -> Path:
        return self.root / job["id"] / f"output.{EXTENSIONS[job['output_format']]}"

    def report_path(self, job: dict[str, Any]) -> Path:
        return self.root / job["id"] / "report.html"

    def load(self, job_id: str) -> dict[str, Any] | None:
        directory = self.directory(job_id)
        if directory is None:
            return None
        try:
            job: dict[str, Any] = json.loads((directory / "job.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return job

    def save(self, job: dict[str, Any]) -> None:
        job["updated_at"] = _now()
        write_replacing(self.root / job["id"] / "job.json", json.dumps(job, ensure_ascii=False).encode("utf-8"))

    def update(self, job_id: str, **changes: Any) -> dict[str, Any]:
        job = self.load(job_id)
        assert job is not None, f"job {job_id} vanished"
        job.update(changes)
        self.save(job)
        return job

    def delete(self, job_id: str) -> None:
        if JOB_ID.match(job_id):
            shutil.rmtree(self.root / job_id, ignore_errors=True)

    def unfinished(self) -> list[str]:
        """Jobs that were queued or running when the service last stopped, oldest first."""
        if not self.root.is_dir():
            return []
        jobs = [self.load(path.name) for path in self.root.iterdir() if JOB_ID.match(path.name)]
        waiting = [j for j in jobs if j is not None and j["state"] in ("queued", "running")]
        return [j["id"] for j in sorted(waiting, key=lambda j: j["created_at"])]


class JobRunner:
    """Scores queued jobs one after another on a background thread, with the service's loaded model."""

    def __init__(self, store: JobStore, predictor: Callable[[], Predictor], model_dir: Callable[[], Path],
                 chunk_size: int = 1000) -> None:
        self.store = store
        self.predictor = predictor
        self.model_dir = model_dir
        self.chunk_size = chunk_size
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread and queue again the jobs a previous run left unfinished."""
        for job_id in self.store.unfinished():
            log.info("batch job %s was interrupted by a restart; resuming it", job_id)
            self._queue.put(job_id)
        self._thread = threading.Thread(target=self._run, name="xinxi-batch", daemon=True)
        self._thread.start()

    def submit(self, job_id: str) -> None:
        self.store.update(job_id, state="queued")
        self._queue.put(job_id)

    def stop(self) -> None:
        self._stop.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            job_id = self._queue.get()
            if job_id is None:
                return
            try:
                self._score(job_id)
            except JobStopping:
                log.info("batch job %s stopped by shutdown; it resumes at the next start", job_id)
                return
            except Exception:  # noqa: BLE001 - one broken job must not stop the others
                log.exception("batch job %s failed", job_id)
                self.store.update(job_id, state="failed", error="internal error; see the server log")

    def _wait_for_model(self) -> Predictor:
        while True:
            try:
                return self.predictor()
            except Exception:  # noqa: BLE001 - not loaded yet: the job stays queued
                if self._stop.wait(0.5):
                    raise JobStopping() from None

    def _score(self, job_id: str) -> None:
        job = self.store.load(job_id)
        if job is None or job["state"] not in ("queued", "running"):
            return
        predictor = self._wait_for_model()
        output = self.store.output_path(job)
        job = self.store.update(job_id, state="running", model_version=predictor.version)
        last = [0.0]

        def progress(rows: int, total_rows: int | None, position: int, total_bytes: int | None) -> None:
            if self._stop.is_set():
                raise JobStopping()
            now = time.monotonic()
            if now - last[0] >= PROGRESS_EVERY:
                last[0] = now
                share = rows / total_rows if total_rows else (position / total_bytes if total_bytes else 0.0)
                self.store.update(job_id, rows=rows, total_rows=total_rows, progress=round(min(share, 1.0), 4))

        options = BatchOptions(
            **job["options"], input_format=job["input_format"], format=job["output_format"],
            chunk_size=self.chunk_size, resume=resume_path(output).exists(), report=self.store.report_path(job),
        )
        arguments: dict[str, Any] = {
            "model_dir": self.model_dir(), "predictor": predictor, "progress": progress, "title": job["filename"],
        }
        try:
            try:
                result = score_file(self.store.input_path(job), output, options, **arguments)
            except BatchError:
                if not options.resume:
                    raise
                # Another model or a damaged checkpoint: start the job over rather than mix results.
                options.resume = False
                result = score_file(self.store.input_path(job), output, options, **arguments)
        except XinxiError as exc:
            # The message names the stored file; show the uploaded name instead of a server path.
            message = str(exc).replace(str(self.store.input_path(job)), job["filename"])
            self.store.update(job_id, state="failed", error=message)
            return
        self.store.update(
            job_id, state="done", rows=result.summary["rows"], total_rows=result.summary["rows"], progress=1.0,
            summary=result.summary, model_version=result.model_version,
        )


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
