"""The registry of model versions in a data directory.

Layout::

    <root>/models/<version>/manifest.json, model.json, vocabulary.json, arrays.npz
    <root>/models/ACTIVE          the id of the active version

``ACTIVE`` is replaced atomically, so readers see either the old or the new
id, never a torn write. The service polls :meth:`ModelRegistry.active_id`
to pick up a newly activated model without restarting.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from model.artifact import MANIFEST_FILE, read_manifest, remove_stale_staging, save_version, umask_mode
from model.errors import ArtifactError, ModelNotFoundError

ACTIVE_FILE = "ACTIVE"


class ModelRegistry:
    """Model versions under ``root/models`` and the pointer to the active one."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.models = self.root / "models"

    def path(self, version: str) -> Path:
        """Directory of ``version``; refuses names that would leave the registry."""
        if not version or "/" in version or "\\" in version or version.startswith("."):
            raise ModelNotFoundError(f"{version!r} is not a model version id")
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

    def activate(self, version: str) -> None:
        """Make ``version`` the active one (atomic replace of the pointer)."""
        path = self.path(version)
        read_manifest(path)
        self.models.mkdir(parents=True, exist_ok=True)
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
