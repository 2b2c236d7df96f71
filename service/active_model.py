"""The model the service answers with, kept in step with the registry's ACTIVE pointer.

A background thread loads the active version at start-up and then looks at the
pointer every ``model_poll_seconds``; a new version is loaded, warmed and
swapped in by one assignment, so requests in flight finish on the model they
started with and no request ever sees a half-loaded one. Until the first
model is in, :meth:`ActiveModel.get` raises ``ModelNotLoadedError`` (503).
If a new version fails to load, the old one keeps serving and the failure is
logged once; whatever the failure, the poller thread keeps polling.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import threading
import time
from pathlib import Path
from typing import Any

from model import ModelNotFoundError, ModelRegistry, Predictor, describe_error
from model.registry import ACTIVE_FILE
from service.errors import ModelNotLoadedError, ModelRejectedError

log = logging.getLogger("xinxi.service")

WARM_UP_ITEM = {
    "id": "warm-up",
    "title": "某县召开招商引资工作推进会",
    "text": "3月5日，某县召开招商引资暨乡村振兴工作推进会，总结一季度工作，分析存在问题，部署下一步任务。",
}


class ActiveModel:
    """Holds the loaded :class:`Predictor` and replaces it when the active version changes."""

    def __init__(self, registry: ModelRegistry, poll_seconds: float, metrics: Any = None) -> None:
        self.registry = registry
        self.poll_seconds = poll_seconds
        self.metrics = metrics
        self._predictor: Predictor | None = None
        self._loaded_id: str | None = None  # the registry's id, which a copied version's manifest may not carry
        self._state = "loading"
        self._failed: tuple[Any, ...] | None = None  # (version, pointer identity) that failed to load
        self._failure: tuple[str, str] | None = None  # (version, what went wrong) of the last failed load
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.ready = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def state(self) -> str:
        """``loading``, ``ready``, ``missing`` (no active version) or ``failed``."""
        return self._state

    @property
    def predictor(self) -> Predictor | None:
        return self._predictor

    def degraded_reason(self) -> str | None:
        """Why the service is degraded: ``ACTIVE`` names a version that failed to load while an older one serves.

        None when the model serving is the one ``ACTIVE`` names (or none serves at all:
        that is not ready, not degraded).
        """
        failure, serving = self._failure, self._loaded_id
        if failure is None or serving is None:
            return None
        try:
            named = self.registry.active_id()
        except OSError as exc:
            return f"cannot read the active model pointer ({type(exc).__name__}); still serving {serving}"
        version, what = failure
        if named != version or named == serving:
            return None
        return f"the active model {version} failed to load ({what}); still serving {serving}"

    def get(self) -> Predictor:
        """The loaded predictor, or ``ModelNotLoadedError`` while there is none."""
        predictor = self._predictor
        if predictor is not None:
            return predictor
        if self._state == "missing":
            raise ModelNotLoadedError(
                "no model has been activated yet; train one with `xinxi train`",
                "尚无可用模型，请先用 `xinxi train` 训练",
            )
        if self._state == "failed":
            raise ModelNotLoadedError(
                "the active model could not be loaded; see the server log", "当前模型加载失败，请查看服务日志"
            )
        raise ModelNotLoadedError("the model is still loading; retry in a few seconds", "模型正在加载，请几秒后重试")

    def start(self) -> None:
        """Load in the background, then keep polling; returns at once so the server can answer 503s."""
        self._thread = threading.Thread(target=self._run, name="xinxi-model", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        self._refresh_guarded()
        while self.poll_seconds > 0 and not self._stop.wait(self.poll_seconds):
            self._refresh_guarded()

    def _refresh_guarded(self) -> None:
        # A dead poller would silently pin the service to its current model for good.
        try:
            self.refresh()
        except Exception:
            log.exception("the model poller failed; it will look again in %s s", self.poll_seconds)

    def refresh(self) -> bool:
        """Load the active version if it is not the one serving; True when a new model was swapped in."""
        with self._lock:
            try:
                version = self.registry.active_id()
            except OSError as exc:
                log.error("cannot read the active model pointer: %s", exc)
                return False
            current = self._loaded_id
            if version is None:
                if current is None:
                    self._state = "missing"
                return False
            if version == current:
                return False
            # A failure is remembered with the pointer's identity: rewriting ACTIVE, as
            # `xinxi models activate` does, asks for another try of the same version.
            attempt = (version, *self._pointer_identity())
            if attempt == self._failed:
                return False
            started = time.perf_counter()
            try:
                predictor = load_and_warm(self.registry.active_path())
            except Exception as exc:  # noqa: BLE001 - a malformed bundle may raise anything; keep serving
                self._failed = attempt
                self._failure = (version, describe_error(exc))
                if current is None:
                    self._state = "failed"
                log.error(
                    "could not load model %s (still serving %s): %s",
                    version,
                    current or "none",
                    exc,
                    exc_info=True,
                )
                if self.metrics is not None:
                    self.metrics.model_swaps.labels("failed").inc()
                return False
            self._install(predictor, version, started)
            return True

    def _pointer_identity(self) -> tuple[int, int]:
        try:
            status = (self.registry.models / ACTIVE_FILE).stat()
        except OSError:
            return (0, 0)
        return (status.st_ino, status.st_mtime_ns)

    def install(
        self, predictor: Predictor, version: str, who: str | None = None, why: str | None = None,
        action: str = "activate",
    ) -> None:
        """Make ``version`` active in the registry and serve ``predictor`` (loaded and warmed) from now on.

        For an explicit activation; ``who``, ``why`` and ``action`` go into the
        registry's audit log. Pointer and model change under the poller's
        lock, so the poller never loads the same version a second time; an
        earlier failure of ``version`` is forgotten.
        """
        with self._lock:
            started = time.perf_counter()
            self.registry.activate(version, who=who, why=why, action=action)
            self._install(predictor, version, started)

    def activate(
        self, version: str, who: str | None = None, why: str | None = None, action: str = "activate"
    ) -> Predictor:
        """Load and warm ``version`` (:func:`load_version`), then make it active and serve it."""
        predictor = load_version(self.registry, version)
        self.install(predictor, version, who, why, action)
        return predictor

    def _install(self, predictor: Predictor, version: str, started: float) -> None:
        previous = self._loaded_id
        self._predictor = predictor
        self._loaded_id = version
        _freeze_long_lived_objects()
        self._failed = None
        self._failure = None
        self._state = "ready"
        self.ready.set()
        if self.metrics is not None:
            self.metrics.model_swaps.labels("loaded").inc()
            self.metrics.model_loaded.set(1)
        log.info(
            "serving model %s (loaded in %.2f s, was %s)",
            version,
            time.perf_counter() - started,
            previous or "none",
        )


def load_version(registry: ModelRegistry, version: str) -> Predictor:
    """Load and warm a registered version before anything points at it.

    The one path of ``PUT /v1/models/active`` and ``xinxi models activate``:
    checksums alone pass a bundle that is malformed inside, and every running
    service follows the pointer, so it only moves to a version that predicts.

    Raises
    ------
    ModelNotFoundError
        If ``version`` is not a version id or has no directory.
    ModelRejectedError
        If the version fails verification, loading or the trial prediction.
    """
    directory = registry.path(version)
    if not directory.is_dir():
        raise ModelNotFoundError(f"no model version {version!r} in {registry.models}")
    try:
        return load_and_warm(directory)
    except Exception as exc:  # noqa: BLE001 - a malformed bundle may raise anything
        log.warning("refused to activate model %s: %s", version, exc, exc_info=True)
        raise ModelRejectedError(
            f"model {version} cannot be loaded, so the active model was not changed: {describe_error(exc)}",
            "该模型版本无法加载，未切换",
        ) from exc


def load_and_warm(directory: Path) -> Predictor:
    """Load a version and score one item with it, so that nothing is served that cannot predict."""
    predictor = Predictor.load(directory)
    predictor.predict([WARM_UP_ITEM])
    return predictor


def _freeze_long_lived_objects() -> None:
    """Keep the model's ~100,000 objects out of the garbage collector's full passes.

    A full collection over a loaded model takes ~70 ms, which every request in
    flight would wait for; the model lives until it is replaced, so it is
    moved to the permanent generation. Unfreezing first lets a replaced model
    be collected.
    """
    gc.unfreeze()
    gc.collect()
    _return_freed_memory()
    gc.freeze()


_LIBC: Any = None


def _return_freed_memory() -> None:
    """Give the heap pages a replaced model freed back to the system (glibc's ``malloc_trim``).

    A model is some 100,000 small objects; once it is replaced and collected,
    glibc keeps the freed pages for the process, so each worker's memory would
    stay at the peak of two models loaded side by side (about +45 % over one
    model, measured over repeated swaps of the default model) instead of
    returning to one model's size (+8 %). Elsewhere than glibc this does nothing.
    """
    global _LIBC
    if _LIBC is None:
        try:
            _LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        except OSError:
            _LIBC = False
    trim = getattr(_LIBC, "malloc_trim", None) if _LIBC else None
    if trim is not None:
        trim(0)
