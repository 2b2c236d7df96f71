"""Retrain jobs: one at a time, in a separate process, committed to the registry only when that process ended well.

A job is a folder ``DATA_DIR/retrain/<id>/`` holding ``job.json`` (state,
stage, progress, the final report), ``spec.json`` and ``stored.jsonl`` (what
the retrain process reads: the corpus paths, the held-out set, the gate, and
a snapshot of the store's labelled items) and what that process writes:
``progress.json``, ``report.json`` and the candidate version under
``staging/``. The retrain process (:func:`training.run_retrain_job`) never
opens the store, the registry or ``ACTIVE``. Only after it exited with a
report does this module move the candidate into the registry (one rename)
and, if the gate passed or the job was forced, activate it (one atomic
replace of ``ACTIVE`` and a line in the audit log). So a ``kill -9`` of the
retrain process at any point leaves the served model, the registry and the
store as they were; the job says it failed and why.

One job runs at a time across every worker and every ``xinxi`` command: a
job holds an exclusive ``flock`` on ``DATA_DIR/retrain/.lock`` from before it
is created until it ends, and a second request while it is held gets
:class:`RetrainRunningError` (409). The lock dies with its process, so a job
whose owner died is recognised as interrupted (lock free, state running) and
marked failed when next looked at.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import getpass
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from model import ModelRegistry, Predictor, describe_error
from model.artifact import read_manifest, umask_mode
from service.errors import ServiceError
from service.settings import Settings

log = logging.getLogger("xinxi.service")

JOB_ID = re.compile(r"^[0-9a-f]{32}$")
POLL_SECONDS = 0.5
FINISHED = ("done", "failed")


class TrainingItems(Protocol):
    """What retraining needs of the store."""

    def training_items(
        self, after_change: int | None = None, up_to_change: int | None = None
    ) -> list[dict[str, Any]]: ...

    def last_change_id(self) -> int: ...


class RetrainRunningError(ServiceError):
    status = 409
    code = "retrain_running"
    message_zh = "已有一个重新训练任务在运行，请等它结束后再试"


class ForceWithoutReasonError(ServiceError):
    status = 422
    code = "reason_required"
    message_zh = "强制上线需要说明理由（reason）"
    message_en = "force promotes a model the gate may refuse: give the reason"


def os_identity() -> str:
    """Who ran an ``xinxi`` command: the operating-system user."""
    try:
        return "os-user:" + getpass.getuser()
    except (KeyError, OSError):
        return f"os-uid:{os.getuid()}"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _write_json(path: Path, value: Any) -> None:
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(value, stream, ensure_ascii=False, default=str)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, umask_mode())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


class RetrainLock:
    """The one-at-a-time lock; held from before a job is created until it is finished."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: Any = None

    def acquire(self) -> bool:
        """Take the lock without waiting; False when another job holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._handle = handle
        return True

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


class RetrainJobs:
    """The retrain jobs under ``DATA_DIR/retrain``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def lock(self) -> RetrainLock:
        return RetrainLock(self.root / ".lock")

    def folder(self, job_id: str) -> Path:
        return self.root / job_id

    def create(self, *, trigger: str, who: str, reason: str | None, force: bool) -> dict[str, Any]:
        job_id = uuid.uuid4().hex
        self.folder(job_id).mkdir(parents=True)
        job = {
            "id": job_id, "kind": "retrain", "state": "queued", "trigger": trigger, "who": who, "reason": reason,
            "force": force, "created_at": _now(), "updated_at": _now(), "finished_at": None, "stage": "queued",
            "progress": 0.0, "pid": None, "outcome": None, "version": None, "error": None, "report": None,
        }
        self.save(job)
        return job

    def save(self, job: dict[str, Any]) -> None:
        job["updated_at"] = _now()
        _write_json(self.folder(job["id"]) / "job.json", job)

    def update(self, job: dict[str, Any], **changes: Any) -> dict[str, Any]:
        job.update(changes)
        self.save(job)
        return job

    def load(self, job_id: str) -> dict[str, Any] | None:
        """A job, or None for an unknown or malformed id; a job whose process died is reported failed."""
        if not JOB_ID.match(job_id):
            return None
        job = _read_json(self.folder(job_id) / "job.json")
        if not isinstance(job, dict):
            return None
        if job["state"] not in FINISHED:
            self.settle_interrupted()
            job = _read_json(self.folder(job_id) / "job.json") or job
        return job

    def all(self) -> list[dict[str, Any]]:
        """Every job, newest first."""
        if not self.root.is_dir():
            return []
        jobs = [_read_json(path / "job.json") for path in self.root.iterdir() if JOB_ID.match(path.name)]
        return sorted((j for j in jobs if isinstance(j, dict)), key=lambda j: j["created_at"], reverse=True)

    def running(self) -> dict[str, Any] | None:
        return next((j for j in self.all() if j["state"] not in FINISHED), None)

    def settle_interrupted(self) -> list[str]:
        """Mark failed the jobs left running by a process that died (the lock is free), and drop their candidates."""
        lock = self.lock()
        if not lock.acquire():
            return []
        try:
            return self.settle_locked()
        finally:
            lock.release()

    def settle_locked(self) -> list[str]:
        """:meth:`settle_interrupted` for the holder of the lock: no job can be running."""
        settled = []
        for job in self.all():
            if job["state"] in FINISHED:
                continue
            shutil.rmtree(self.folder(job["id"]) / "staging", ignore_errors=True)
            self.update(job, state="failed", outcome="failed", finished_at=_now(),
                        error="interrupted: the process that ran this retrain stopped; nothing was changed")
            settled.append(job["id"])
        return settled


def store_snapshot(store: TrainingItems) -> tuple[list[dict[str, Any]], int]:
    """The store's labelled items up to its last change, and that change id."""
    last = int(store.last_change_id())
    return list(store.training_items(up_to_change=last)), last


def spec_for(settings: Settings, registry: ModelRegistry) -> dict[str, Any]:
    """What the retrain process is told, from the settings and the active model."""
    import training

    data = settings.retrain_data or [Path(p) for p in training.DEFAULT_DATA]
    holdout = settings.retrain_holdout or training.HOLDOUT_DATA
    active_id = registry.active_id()
    active_dir = registry.path(active_id) if active_id else None
    watermark = 0
    if active_dir is not None:
        try:
            store = (read_manifest(active_dir).get("training_data") or {}).get("store") or {}
            watermark = int(store.get("up_to_change") or 0)
        except Exception:  # noqa: BLE001 - a damaged active version: the process reports it
            watermark = 0
    return {
        "data": [str(p) for p in data],
        "holdout": str(holdout),
        "active": active_id,
        "active_dir": str(active_dir) if active_dir else None,
        "watermark": watermark,
        "gate": {"max_macro_f1_drop": settings.retrain_max_macro_f1_drop,
                 "max_kind_accuracy_drop": settings.retrain_max_kind_accuracy_drop},
        "fit_options": {"seed": 0, "folds": settings.retrain_folds},
        "parent_pid": os.getpid(),
    }


class Retrainer:
    """Starts retrain jobs and runs them to the end: the process, its progress, the commit."""

    def __init__(self, settings: Settings, store: Any, registry: ModelRegistry,
                 install: Callable[[Predictor, str, str, str, str], None] | None = None) -> None:
        self.settings = settings
        self.store = store
        self.registry = registry
        self.jobs = RetrainJobs(settings.data_dir / "retrain")
        self.install = install
        self._stop = threading.Event()
        self._process: subprocess.Popen[bytes] | None = None
        self._threads: list[threading.Thread] = []

    def begin(self, *, trigger: str, who: str, reason: str | None, force: bool) -> tuple[dict[str, Any], RetrainLock]:
        """Take the lock and create the job; :class:`RetrainRunningError` while another one runs."""
        if force and not (reason or "").strip():
            raise ForceWithoutReasonError()
        lock = self.jobs.lock()
        if not lock.acquire():
            running = self.jobs.running()
            which = f" (job {running['id']}, started {running['created_at']})" if running else ""
            raise RetrainRunningError(
                f"a retrain is already running{which}; wait for it to finish, then try again",
            )
        try:
            self.jobs.settle_locked()  # what a dead process left: we hold the lock, so nothing runs
            job = self.jobs.create(trigger=trigger, who=who, reason=(reason or "").strip() or None, force=force)
        except BaseException:
            lock.release()
            raise
        return job, lock

    def start(self, *, trigger: str, who: str, reason: str | None, force: bool) -> dict[str, Any]:
        """Begin a job and run it on a background thread; returns the job as created."""
        job, lock = self.begin(trigger=trigger, who=who, reason=reason, force=force)
        thread = threading.Thread(target=self.run, args=(job, lock), name=f"xinxi-retrain-{job['id'][:8]}",
                                  daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()
        return dict(job)

    def stop(self) -> None:
        """At shutdown: stop a running retrain process (its job fails; nothing was changed)."""
        self._stop.set()
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
        for thread in self._threads:
            thread.join(timeout=15)

    def run(self, job: dict[str, Any], lock: RetrainLock,
            progress: Callable[[str, float], None] | None = None) -> dict[str, Any]:
        """Run a begun job to its end (in this thread) and release the lock; returns the finished job."""
        folder = self.jobs.folder(job["id"])
        try:
            self._run(job, folder, progress)
        except Exception as exc:  # noqa: BLE001 - the job records it; the service carries on
            log.exception("retrain job %s failed", job["id"])
            shutil.rmtree(folder / "staging", ignore_errors=True)
            self.jobs.update(job, state="failed", outcome="failed", finished_at=_now(), error=describe_error(exc))
        finally:
            lock.release()
        return job

    def _run(self, job: dict[str, Any], folder: Path, progress: Callable[[str, float], None] | None) -> None:
        spec = spec_for(self.settings, self.registry)
        self.jobs.update(job, state="running", stage="reading the store")
        try:
            records, last_change = store_snapshot(self.store)
        except Exception as exc:  # noqa: BLE001 - a store that is down: say so, change nothing
            raise RuntimeError(f"the store cannot be read, so nothing was retrained ({describe_error(exc)})") from exc
        with (folder / "stored.jsonl").open("w", encoding="utf-8") as stream:
            for record in records:
                stream.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        spec.update(stored=str(folder / "stored.jsonl"), force=job["force"], store_last_change=last_change)
        _write_json(folder / "spec.json", spec)
        code = "import sys, training; training.run_retrain_job(sys.argv[1])"
        with (folder / "retrain.log").open("ab") as output:
            self._process = process = subprocess.Popen(
                [sys.executable, "-c", code, str(folder / "spec.json")], stdout=output, stderr=output,
                stdin=subprocess.DEVNULL, env={**os.environ},
            )
        self.jobs.update(job, pid=process.pid, stage="starting")
        last = (None, None)
        while process.poll() is None:
            if self._stop.wait(POLL_SECONDS):
                process.terminate()
            state = _read_json(folder / "progress.json") or {}
            current = (state.get("stage"), state.get("progress"))
            if current != last and current[0] is not None:
                last = current
                self.jobs.update(job, stage=current[0], progress=current[1])
                if progress is not None:
                    progress(str(current[0]), float(current[1] or 0))
        self._process = None
        report = _read_json(folder / "report.json")
        if not isinstance(report, dict) or process.returncode != 0:
            why = report.get("error") if isinstance(report, dict) else None
            ended = (f"was killed by signal {-process.returncode}" if process.returncode < 0
                     else f"ended with exit code {process.returncode}")
            raise RuntimeError(why or f"the retrain process {ended}; the active model and the registry are unchanged")
        self._commit(job, spec, report, folder)

    def _commit(self, job: dict[str, Any], spec: dict[str, Any], report: dict[str, Any], folder: Path) -> None:
        """Move a promoted candidate into the registry and activate it; record the outcome."""
        if not report.get("promote"):
            self.jobs.update(job, state="done", outcome="kept", stage="done", progress=1.0, finished_at=_now(),
                             report=report)
            return
        from service.active_model import load_and_warm

        # Loaded and tried where it was written: a candidate that cannot predict never reaches the registry.
        predictor = load_and_warm(Path(report["candidate_dir"]))
        directory = self.registry.import_version(Path(report["candidate_dir"]))
        version = directory.name
        shutil.rmtree(folder / "staging", ignore_errors=True)
        now_active = self.registry.active_id()
        if now_active != spec["active"]:
            note = (f"the active model changed from {spec['active']} to {now_active} during the retrain; "
                    f"{version} was kept but not activated (activate it with `xinxi models activate {version}`)")
            self.jobs.update(job, state="done", outcome="kept", stage="done", progress=1.0, finished_at=_now(),
                             version=version, report={**report, "note": note})
            return
        forced = bool(job["force"] and not report.get("passed"))
        why = job["reason"] or (
            f"retrain job {job['id']}: passed the promotion gate against {spec['active']}" if spec["active"]
            else f"retrain job {job['id']}: first model")
        action = "force" if forced else "retrain"
        if self.install is not None:
            self.install(predictor, version, job["who"], why, action)
        else:
            self.registry.activate(version, who=job["who"], why=why, action=action)
        pruned = self.registry.prune(self.settings.model_keep)
        self.jobs.update(job, state="done", outcome="forced" if forced else "promoted", stage="done", progress=1.0,
                         finished_at=_now(), version=version, report={**report, "pruned": pruned})


class RetrainScheduler:
    """Periodic retraining (``XINXI_RETRAIN_INTERVAL_HOURS``), run by whichever worker holds the schedule lock.

    Every worker starts one; the first to take ``DATA_DIR/retrain/.schedule.lock``
    keeps it for its lifetime and is the only one that schedules (another
    takes over when it stops). A retrain is due when the newest job of any
    trigger was created at least one interval ago; a job already running
    (a person's, or another's) just postpones it.
    """

    def __init__(self, retrainer: Retrainer, interval_hours: float, check_seconds: float = 60.0) -> None:
        self.retrainer = retrainer
        self.interval = interval_hours * 3600.0
        self.check_seconds = min(check_seconds, max(self.interval / 4, 0.2))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lock = RetrainLock(retrainer.jobs.root / ".schedule.lock")
        self.leading = False

    def start(self) -> None:
        if self.interval <= 0:
            return
        self._thread = threading.Thread(target=self._run, name="xinxi-retrain-schedule", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.lock.release()
        self.leading = False

    def due(self) -> bool:
        jobs = self.retrainer.jobs.all()
        if not jobs:
            return True
        newest = dt.datetime.fromisoformat(jobs[0]["created_at"])
        return (dt.datetime.now(dt.UTC) - newest).total_seconds() >= self.interval

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self.leading:
                self.leading = self.lock.acquire()
            if self.leading and self.due():
                try:
                    job = self.retrainer.start(trigger="schedule", who="schedule",
                                               reason="periodic retrain (XINXI_RETRAIN_INTERVAL_HOURS)", force=False)
                    log.info("scheduled retrain job %s started", job["id"])
                except RetrainRunningError:
                    pass
                except Exception:  # noqa: BLE001 - the schedule must survive one failure
                    log.exception("the scheduled retrain could not start")
            self._stop.wait(self.check_seconds)
