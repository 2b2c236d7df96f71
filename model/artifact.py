"""Model version directories: atomic save, verified load.

A version is a directory holding the model's plain state (``model.json``,
``vocabulary.json``, ``arrays.npz``: see :mod:`model.state`) and
``manifest.json``. The manifest records what the model needs to be trusted:
its labels, thresholds, metrics, the data it was trained on, library
versions, the segmenter, and the SHA-256 and size of every file.
:func:`load_state` checks each file against it before parsing a byte, and
parsing is ``json.loads`` and ``np.load(..., allow_pickle=False)``: loading a
version can never run code, whoever wrote its files.

Versions of the first format held a joblib pickle (``model.joblib``). They are
refused with what to do (retrain, or convert once with ``xinxi models convert``,
:mod:`model.legacy`); nothing here unpickles.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from model.errors import ArtifactError, ChecksumError, IncompatibleModelError, ModelNotFoundError, PickledModelError
from model.state import STATE_FILES, STATE_FORMAT, ModelState
from model.text import ENGINES, dictionary_sha256

MANIFEST_FILE = "manifest.json"
PICKLE_FILE = "model.joblib"
"""The model file of the first format (a joblib pickle): refused by every load, read only by :mod:`model.legacy`."""
FORMAT_VERSION = STATE_FORMAT
_RECORDED = ("scikit-learn", "numpy", "scipy", "joblib", "jieba", "rjieba")


def library_versions() -> dict[str, str | None]:
    """Versions of the libraries a model depends on, as installed now."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in _RECORDED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def umask_mode(directory: bool = False) -> int:
    """The mode that ``open`` or ``mkdir`` would give a new file (0644) or directory (0755) under the umask.

    ``tempfile`` creates its files 0600 and its directories 0700; whatever
    xinxi renames into place gets this mode instead. The umask is read from
    ``/proc`` where possible, because setting it to read it is not thread-safe.
    """
    umask = None
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                umask = int(line.split()[1], 8)
                break
    except OSError:
        pass
    if umask is None:
        umask = os.umask(0o022)
        os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


def new_version_id(now: datetime | None = None) -> str:
    """A sortable, unique version id such as ``20261127-154012-3fa2``."""
    now = now or datetime.now(UTC)
    return now.strftime("%Y%m%d-%H%M%S-") + os.urandom(2).hex()


def save_version(model: ModelState | Mapping[str, Any], manifest: dict[str, Any], directory: Path) -> Path:
    """Write a model version to ``directory`` atomically, as JSON and ``.npz`` (no pickle).

    Everything is written into a temporary sibling directory which is renamed
    into place at the end, so a crash leaves either the whole version or none.
    The same model gives byte-identical model files (only the manifest
    records when it was made).

    Parameters
    ----------
    model : ModelState or dict
        The model's plain state, or the trainer's fitted bundle (estimators and
        label order) from which it is read (:meth:`ModelState.from_fitted`).
    manifest : dict
        Metadata; ``files``, ``libraries`` and ``format`` are filled in here.
    directory : Path
        Target directory; must not exist yet.

    Returns
    -------
    Path
        ``directory``.

    Raises
    ------
    ArtifactError
        If ``directory`` exists, or the model holds what cannot be stored as plain data.
    """
    directory = Path(directory)
    if directory.exists():
        raise ArtifactError(f"model directory {directory} already exists; choose a new one")
    state = model if isinstance(model, ModelState) else ModelState.from_fitted(model)
    files = state.to_files()
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.staging.{_HOST}.{os.getpid()}.", dir=directory.parent))
    try:
        os.chmod(staging, umask_mode(directory=True))
        for name, data in files.items():
            _write_durably(staging / name, data)
        manifest = dict(manifest)
        manifest.setdefault("version", directory.name)
        manifest["format"] = FORMAT_VERSION
        manifest["libraries"] = library_versions()
        manifest["files"] = {
            name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)} for name, data in files.items()
        }
        _write_durably(staging / MANIFEST_FILE, json.dumps(manifest, ensure_ascii=False, indent=2).encode("utf-8"))
        _fsync_directory(staging)
        os.rename(staging, directory)
        _fsync_directory(directory.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def _write_durably(path: Path, data: bytes) -> None:
    with path.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(path, umask_mode())


STALE_SECONDS = 600
"""A staging folder untouched this long is abandoned, whoever owns it (a save writes to it continuously)."""

_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"
_OWNED_STAGING = re.compile(r"^\..+\.staging\.(?P<host>[A-Za-z0-9-]+)\.(?P<pid>\d+)\.[a-z0-9_]{8}$")
_LEFTOVER = re.compile(r"^\..+\.[a-z0-9_]{8}$")  # staging folders of older versions, and .active.* pointer files


def remove_stale_staging(parent: Path, stale_seconds: float = STALE_SECONDS) -> list[Path]:
    """Remove what interrupted saves left in ``parent``; returns what was removed.

    A ``kill -9`` during :func:`save_version` (or a pointer update) leaves its
    hidden staging folder (or temporary file) behind. One is stale when the
    process that made it, on this machine, is gone, or when nothing in it
    changed for ``stale_seconds``. Staging of a live save is left alone.
    """
    removed: list[Path] = []
    try:
        entries = list(Path(parent).iterdir())
    except FileNotFoundError:
        return removed
    now = time.time()
    for entry in entries:
        if not _LEFTOVER.match(entry.name):
            continue
        owner = _OWNED_STAGING.match(entry.name)
        orphaned = owner is not None and owner["host"] == _HOST and not _process_alive(int(owner["pid"]))
        try:
            if not orphaned and now - _last_change(entry) < stale_seconds:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except FileNotFoundError:  # finished or removed meanwhile
            continue
        removed.append(entry)
    return removed


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _last_change(path: Path) -> float:
    """The newest modification time of ``path`` and, for a folder, of what is directly in it."""
    newest = path.lstat().st_mtime
    if path.is_dir() and not path.is_symlink():
        for child in path.iterdir():
            newest = max(newest, child.lstat().st_mtime)
    return newest


def _fsync_directory(path: Path) -> None:
    """Make a directory's entries durable (the rename of a version survives a power cut)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def read_manifest(directory: Path) -> dict[str, Any]:
    """Read and parse ``manifest.json`` of a version directory."""
    path = Path(directory) / MANIFEST_FILE
    if not Path(directory).is_dir():
        raise ModelNotFoundError(f"no model version at {directory}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ArtifactError(f"{directory} has no {MANIFEST_FILE}: not a model version") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{path} is not a manifest (a JSON object was expected)")
    return manifest


def verified_bytes(directory: Path, manifest: dict[str, Any], name: str) -> bytes:
    """The bytes of a model file, read once and checked against the manifest's SHA-256 and size.

    What is checked is exactly what is then parsed: the file is not opened a
    second time. The checksum guards against damage and accidental change;
    the file formats guard against the rest (nothing in them can run code).
    """
    expected = (manifest.get("files") or {}).get(name)
    if not isinstance(expected, dict):
        raise ArtifactError(f"{directory}/{MANIFEST_FILE} lists no {name}")
    path = Path(directory) / name
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise ArtifactError(f"{path} is missing") from exc
    if len(data) != expected.get("bytes") or hashlib.sha256(data).hexdigest() != expected.get("sha256"):
        raise ChecksumError(
            f"{path} does not match the SHA-256 in its manifest: the file was changed or damaged; "
            "retrain or restore the version"
        )
    return data


def is_pickled(manifest: Mapping[str, Any]) -> bool:
    """Whether a manifest describes a version of the first format (a joblib pickle)."""
    files = manifest.get("files")
    return manifest.get("format") == 1 or (isinstance(files, Mapping) and PICKLE_FILE in files)


def check_format(directory: Path, manifest: Mapping[str, Any]) -> None:
    """Refuse a pickled version (saying what to do) and any format this code does not know."""
    version = manifest.get("version") or Path(directory).name
    if is_pickled(manifest):
        raise PickledModelError(
            f"model {version} is stored in the old pickle format ({PICKLE_FILE}), which xinxi no longer loads "
            "because loading a pickle can run any code written into it. Retrain with `xinxi train`, or convert "
            f"this version once with `xinxi models convert {version}` (only if you trust its files)"
        )
    if manifest.get("format") != FORMAT_VERSION:
        raise IncompatibleModelError(
            f"model {version} has format {manifest.get('format')!r}; this xinxi reads format {FORMAT_VERSION}. "
            "Retrain it with `xinxi train`, or use the xinxi version that saved it"
        )


def check_compatible(manifest: Mapping[str, Any]) -> None:
    """Refuse a version trained with another segmenter or domain dictionary than the installed ones.

    The model's state is plain data, so the scikit-learn version it was
    trained with does not matter for loading (it is recorded all the same).
    """
    segmenter = manifest.get("segmenter") or {}
    if segmenter.get("engine") not in ENGINES:
        raise IncompatibleModelError(f"model {manifest.get('version')} names an unknown segmenter {segmenter}")
    if segmenter.get("dictionary_sha256") != dictionary_sha256():
        raise IncompatibleModelError(
            f"model {manifest.get('version')} was trained with another domain dictionary than the one "
            "installed; retrain it with `xinxi train`"
        )


def load_state(directory: Path) -> tuple[ModelState, dict[str, Any]]:
    """Verify, then load, a model version. Returns ``(state, manifest)``.

    The manifest is read first; a pickled version is refused before any of
    its files is opened. Each file of :data:`model.state.STATE_FILES` (and
    nothing else) is read once, checked against its SHA-256, then parsed.
    """
    directory = Path(directory)
    manifest = read_manifest(directory)
    check_format(directory, manifest)
    if not manifest.get("version"):
        raise ArtifactError(f"{directory / MANIFEST_FILE} names no version")
    check_compatible(manifest)
    files = {name: verified_bytes(directory, manifest, name) for name in STATE_FILES}
    state = ModelState.from_files(files, where=str(directory))
    labels = list((manifest.get("labels") or {}).get("topics") or [])
    if state.topic_labels != labels:
        raise IncompatibleModelError(
            f"model {manifest.get('version')}: labels in the model {state.topic_labels} "
            f"differ from its manifest {labels}"
        )
    return state, manifest
