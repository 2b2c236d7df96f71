"""The registry of model versions in a data directory.

Layout::

    <root>/models/<version>/manifest.json, model.json, vocabulary.json, arrays.npz
    <root>/models/ACTIVE          the id of the active version
    <root>/models/AUDIT.jsonl     one line per activation: when, which version, from which, who and why

``ACTIVE`` is replaced atomically, so readers see either the old or the new
id, never a torn write. The service polls :meth:`ModelRegistry.active_id`
to pick up a newly activated model without restarting. The audit log is
appended to, never rewritten; it answers which version was active at a given
time (:meth:`ModelRegistry.active_at`) and which one a rollback returns to.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from model.artifact import MANIFEST_FILE, read_manifest, remove_stale_staging, save_version, umask_mode
from model.errors import ArtifactError, ModelNotFoundError

ACTIVE_FILE = "ACTIVE"
VERSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
AUDIT_FILE = "AUDIT.jsonl"


def parse_time(value: str | datetime) -> datetime:
    """A point in time from ISO 8601 (``2026-03-03T10:00``, ``2026-03-03``); UTC unless it carries an offset."""
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a time; write it as 2026-03-03T10:00 (UTC) or with +08:00") from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class ModelRegistry:
    """Model versions under ``root/models`` and the pointer to the active one."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.models = self.root / "models"

    def path(self, version: str) -> Path:
        """Directory of ``version``; refuses anything but a plain id (letters, digits, ``.``, ``_``, ``-``).

        An id is never a path: no separator, no leading dot, no control or white-space character,
        so no client-supplied string can name a directory outside ``models/``.
        """
        if not VERSION_ID.fullmatch(version):
            raise ModelNotFoundError(f"{version[:80]!r} is not a model version id")
        return self.models / version

    def save(self, bundle: Any, manifest: dict[str, Any], version: str) -> Path:
        """Save a new version (:func:`model.artifact.save_version`), first removing stale staging folders."""
        self.remove_stale_staging()
        return save_version(bundle, manifest, self.path(version))

    def remove_stale_staging(self) -> list[Path]:
        """Remove what saves killed midway left behind (:func:`model.artifact.remove_stale_staging`)."""
        return remove_stale_staging(self.models)

    def versions(self) -> list[dict[str, Any]]:
        """Manifests of every complete version, oldest first (stale staging folders are removed first)."""
        if not self.models.is_dir():
            return []
        self.remove_stale_staging()
        found = []
        for directory in sorted(self.models.iterdir()):
            if directory.is_dir() and not directory.name.startswith(".") and (directory / MANIFEST_FILE).is_file():
                try:
                    found.append(read_manifest(directory))
                except ArtifactError:
                    continue
        return sorted(found, key=lambda m: (m.get("created_at", ""), m.get("version", "")))

    def active_id(self) -> str | None:
        """Id of the active version, or None when none was activated."""
        try:
            value = (self.models / ACTIVE_FILE).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        return value or None

    def active_path(self) -> Path:
        """Directory of the active version."""
        version = self.active_id()
        if version is None:
            raise ModelNotFoundError(
                f"no active model in {self.models}; train one with `xinxi train`"
            )
        path = self.path(version)
        if not path.is_dir():
            raise ModelNotFoundError(f"the active model {version} is missing from {self.models}")
        return path

    def activate(
        self, version: str, *, who: str | None = None, why: str | None = None, action: str = "activate"
    ) -> None:
        """Make ``version`` the active one (atomic replace of the pointer) and record it in the audit log.

        ``who`` (an API key's fingerprint, an OS user, ``schedule``), ``why``
        and ``action`` (``activate``, ``rollback``, ``retrain``, ``force``,
        ``train``) go into the log with the time and the version it replaces.
        """
        path = self.path(version)
        read_manifest(path)
        self.models.mkdir(parents=True, exist_ok=True)
        with self._locked():
            previous = self.active_id()
            handle, temporary = tempfile.mkstemp(prefix=".active.", dir=self.models)
            try:
                with os.fdopen(handle, "w", encoding="utf-8") as stream:
                    stream.write(version + "\n")
                    stream.flush()
                    os.fsync(stream.fileno())
                os.chmod(temporary, umask_mode())
                os.replace(temporary, self.models / ACTIVE_FILE)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
            self._append_audit(
                {"at": datetime.now(UTC).isoformat(timespec="microseconds"), "version": version,
                 "previous": previous, "action": action, "who": who, "why": why}
            )

    def _locked(self) -> Any:
        """An exclusive lock of the registry (its folder), so that pointer and audit log change together."""
        self.models.mkdir(parents=True, exist_ok=True)
        return _DirectoryLock(self.models)

    def _append_audit(self, entry: dict[str, Any]) -> None:
        line = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")
        descriptor = os.open(self.models / AUDIT_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, umask_mode())
        try:
            os.write(descriptor, line)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    def audit_log(self) -> list[dict[str, Any]]:
        """Every recorded activation, oldest first (a torn last line of a crash is skipped)."""
        try:
            lines = (self.models / AUDIT_FILE).read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        entries = []
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("version") and entry.get("at"):
                entries.append(entry)
        return entries

    def active_at(self, when: str | datetime) -> dict[str, Any] | None:
        """The activation in force at ``when``: the last one recorded at or before it, or None.

        Before the first recorded activation the answer is that entry's
        ``previous`` version, when it names one (activated before the log began),
        returned with ``"since": None``.
        """
        moment = parse_time(when)
        entries = self.audit_log()
        found = None
        for entry in entries:
            if parse_time(entry["at"]) <= moment:
                found = entry
        if found is not None:
            return {**found, "since": found["at"]}
        if entries and entries[0].get("previous"):
            return {"version": entries[0]["previous"], "since": None, "at": None, "who": None, "why": None,
                    "action": "before the audit log began", "previous": None}
        return None

    def previous_id(self) -> str | None:
        """The version that was active before the current one, from the audit log."""
        active = self.active_id()
        for entry in reversed(self.audit_log()):
            if entry["version"] == active:
                return entry.get("previous")
        return None

    def import_version(self, directory: Path) -> Path:
        """Move a complete version directory (written by :meth:`save` elsewhere) into the registry, atomically.

        The directory must lie on the same file system (e.g. a job folder in
        the data directory): it appears here whole, by one rename, or not at all.
        """
        directory = Path(directory)
        manifest = read_manifest(directory)
        target = self.path(str(manifest.get("version") or directory.name))
        if target.exists():
            raise ArtifactError(f"model version {target.name} already exists in {self.models}")
        self.models.mkdir(parents=True, exist_ok=True)
        os.rename(directory, target)
        return target

    def prune(self, keep: int, protect: Iterable[str] = ()) -> list[str]:
        """Delete all but the ``keep`` newest versions; never the active one, the previous one or ``protect``.

        A version is first renamed to a hidden name (so it vanishes from
        :meth:`versions` at once), then removed. Returns the deleted ids.
        """
        if keep < 1:
            raise ValueError("keep at least one model version")
        with self._locked():
            spared = {self.active_id(), self.previous_id(), *protect}
            versions = [m["version"] for m in self.versions()]
            doomed = [v for v in versions[: max(len(versions) - keep, 0)] if v not in spared]
            for version in doomed:
                hidden = self.models / f".{version}.deleting.{os.urandom(4).hex()}"
                os.rename(self.path(version), hidden)
                shutil.rmtree(hidden, ignore_errors=True)
        return doomed


class _DirectoryLock:
    """``with``: an exclusive ``flock`` on a directory, released on exit (or when the process dies)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._descriptor = -1

    def __enter__(self) -> _DirectoryLock:
        self._descriptor = os.open(self.path, os.O_RDONLY)
        fcntl.flock(self._descriptor, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self._descriptor, fcntl.LOCK_UN)
        os.close(self._descriptor)
