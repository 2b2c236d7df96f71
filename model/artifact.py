"""Model version directories: atomic save, verified load.

A version is a directory holding ``model.joblib`` and ``manifest.json``. The
manifest records what the model needs to be trusted: its labels, thresholds,
metrics, the data it was trained on, library versions, the segmenter, and the
SHA-256 and size of every file. :func:`load_bundle` checks all of that before
``joblib.load`` touches a byte of the pickle.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import re
import shutil
import socket
import tempfile
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import joblib

from model.errors import ArtifactError, ChecksumError, IncompatibleModelError, ModelNotFoundError, describe_error
from model.text import ENGINES, dictionary_sha256

MODEL_FILE = "model.joblib"
MANIFEST_FILE = "manifest.json"
FORMAT_VERSION = 1
_PINNED = ("scikit-learn",)
_BUNDLE_KEYS = ("topics", "kind", "topic_labels", "mode")
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


def save_version(bundle: dict[str, Any], manifest: dict[str, Any], directory: Path) -> Path:
    """Write a model version to ``directory`` atomically.

    Everything is written into a temporary sibling directory which is renamed
    into place at the end, so a crash leaves either the whole version or none.

    Parameters
    ----------
    bundle : dict
        The fitted estimators and their label order.
    manifest : dict
        Metadata; ``files``, ``libraries`` and ``format`` are filled in here.
    directory : Path
        Target directory; must not exist yet.

    Returns
    -------
    Path
        ``directory``.
    """
    directory = Path(directory)
    if directory.exists():
        raise ArtifactError(f"model directory {directory} already exists; choose a new one")
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.staging.{_HOST}.{os.getpid()}.", dir=directory.parent))
    try:
        os.chmod(staging, umask_mode(directory=True))
        with (staging / MODEL_FILE).open("wb") as handle:
            joblib.dump(bundle, handle, compress=3)
            handle.flush()
            os.fsync(handle.fileno())
        manifest = dict(manifest)
        manifest.setdefault("version", directory.name)
        manifest["format"] = FORMAT_VERSION
        manifest["libraries"] = library_versions()
        manifest["files"] = {
            MODEL_FILE: {
                "sha256": file_sha256(staging / MODEL_FILE),
                "bytes": (staging / MODEL_FILE).stat().st_size,
            }
        }
        with (staging / MANIFEST_FILE).open("w", encoding="utf-8") as handle:
            json.dump(manifest, handle, ensure_ascii=False, indent=2)
            handle.flush()
            os.fsync(handle.fileno())
        _fsync_directory(staging)
        os.rename(staging, directory)
        _fsync_directory(directory.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


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


def verified_bytes(directory: Path, manifest: dict[str, Any], name: str = MODEL_FILE) -> bytes:
    """The bytes of a model file, read once and checked against the manifest's SHA-256 and size.

    What is checked is exactly what is then unpickled: the file is not opened
    a second time. The checksum guards against damage and accidental change;
    whoever can write the data directory can write a manifest too, so that
    directory must be writable by the service's own user only.
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


def verify(directory: Path, manifest: dict[str, Any]) -> None:
    """Refuse a version whose files or library versions do not match its manifest."""
    files = manifest.get("files") or {}
    if MODEL_FILE not in files:
        raise ArtifactError(f"{directory}/{MANIFEST_FILE} lists no {MODEL_FILE}")
    for name in files:
        verified_bytes(directory, manifest, name)
    _check_compatible(manifest)


def _check_compatible(manifest: dict[str, Any]) -> None:
    installed = library_versions()
    for name in _PINNED:
        saved = (manifest.get("libraries") or {}).get(name)
        if saved != installed.get(name):
            raise IncompatibleModelError(
                f"model {manifest.get('version')} was saved with {name} {saved} but {installed.get(name)} "
                "is installed; retrain it with `xinxi train` (or install the version it was saved with)"
            )
    segmenter = manifest.get("segmenter") or {}
    if segmenter.get("engine") not in ENGINES:
        raise IncompatibleModelError(f"model {manifest.get('version')} names an unknown segmenter {segmenter}")
    if segmenter.get("dictionary_sha256") != dictionary_sha256():
        raise IncompatibleModelError(
            f"model {manifest.get('version')} was trained with another domain dictionary than the one "
            "installed; retrain it with `xinxi train`"
        )


def load_bundle(directory: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Verify, then load, a model version. Returns ``(bundle, manifest)``."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    data = verified_bytes(directory, manifest)
    _check_compatible(manifest)
    try:
        bundle = joblib.load(io.BytesIO(data))
    except Exception as exc:  # a verified file that still fails to unpickle
        # Unpickling errors say little on their own (KeyError: 172, an empty EOFError): say what they mean.
        raise ArtifactError(
            f"could not load {directory / MODEL_FILE}: the file is truncated or not a model "
            f"({describe_error(exc)}); retrain it or restore the version"
        ) from exc
    missing = [key for key in _BUNDLE_KEYS if not isinstance(bundle, dict) or key not in bundle]
    if missing:
        raise ArtifactError(f"{directory / MODEL_FILE} is not a xinxi model: it lacks {', '.join(missing)}")
    if not manifest.get("version"):
        raise ArtifactError(f"{directory / MANIFEST_FILE} names no version")
    labels = list((manifest.get("labels") or {}).get("topics") or [])
    if list(bundle.get("topic_labels", [])) != labels:
        raise IncompatibleModelError(
            f"model {manifest.get('version')}: labels in the model {bundle.get('topic_labels')} "
            f"differ from its manifest {labels}"
        )
    return bundle, manifest
