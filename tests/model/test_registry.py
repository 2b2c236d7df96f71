"""The registry: versions in a data directory and the ACTIVE pointer."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from model import ModelNotFoundError, ModelRegistry


def _add(root: Path, source: Path, version: str, created_at: str) -> None:
    target = root / "models" / version
    shutil.copytree(source, target)
    manifest = json.loads((target / "manifest.json").read_text(encoding="utf-8"))
    manifest.update(version=version, created_at=created_at)
    (target / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


def test_an_empty_registry_has_no_versions_and_says_how_to_get_one(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    assert registry.versions() == [] and registry.active_id() is None
    with pytest.raises(ModelNotFoundError, match=r"no active model in .*train one with `xinxi train`"):
        registry.active_path()


def test_versions_are_complete_ones_oldest_first(tmp_path: Path, model_dir: Path) -> None:
    _add(tmp_path, model_dir, "b-newer", "2026-02-01T00:00:00+00:00")
    _add(tmp_path, model_dir, "a-older", "2026-01-01T00:00:00+00:00")
    (tmp_path / "models" / ".staging").mkdir()
    (tmp_path / "models" / "no-manifest").mkdir()
    (tmp_path / "models" / "broken").mkdir()
    (tmp_path / "models" / "broken" / "manifest.json").write_text("{oops", encoding="utf-8")
    assert [m["version"] for m in ModelRegistry(tmp_path).versions()] == ["a-older", "b-newer"]


def test_activate_moves_the_pointer_to_an_existing_version_only(tmp_path: Path, model_dir: Path) -> None:
    _add(tmp_path, model_dir, "v1", "2026-01-01T00:00:00+00:00")
    registry = ModelRegistry(tmp_path)
    registry.activate("v1")
    assert registry.active_id() == "v1" and registry.active_path() == tmp_path / "models" / "v1"
    assert (tmp_path / "models" / "ACTIVE").read_text(encoding="utf-8") == "v1\n"
    with pytest.raises(ModelNotFoundError, match="no model version at"):
        registry.activate("v2")
    assert registry.active_id() == "v1"
    assert not [p for p in (tmp_path / "models").iterdir() if p.name.startswith(".active")]


@pytest.mark.parametrize("version", ["", "../v1", "a/b", ".hidden", "a\\b"])
def test_ids_that_would_leave_the_registry_are_refused(tmp_path: Path, version: str) -> None:
    with pytest.raises(ModelNotFoundError, match="is not a model version id"):
        ModelRegistry(tmp_path).path(version)


def test_an_active_version_that_disappeared_is_named(tmp_path: Path, model_dir: Path) -> None:
    _add(tmp_path, model_dir, "gone", "2026-01-01T00:00:00+00:00")
    registry = ModelRegistry(tmp_path)
    registry.activate("gone")
    shutil.rmtree(tmp_path / "models" / "gone")
    with pytest.raises(ModelNotFoundError, match="the active model gone is missing from"):
        registry.active_path()
