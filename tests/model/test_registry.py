"""The registry: versions in a data directory and the ACTIVE pointer."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
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


_SAVE_THAT_HANGS = """
import sys, time
from pathlib import Path
import model.artifact as artifact

state, _ = artifact.load_state(Path(sys.argv[3]))

def hang(path, data):
    Path(sys.argv[2]).touch()  # the staging folder exists now
    time.sleep(120)

artifact._write_durably = hang
artifact.save_version(state, {}, Path(sys.argv[1]))
"""


def _staging(models: Path) -> list[Path]:
    return [p for p in models.iterdir() if p.name.startswith(".")]


def test_a_save_killed_midway_leaves_staging_that_the_next_save_or_listing_removes(
    tmp_path: Path, model_dir: Path
) -> None:
    registry = ModelRegistry(tmp_path)
    _add(tmp_path, model_dir, "v1", "2026-01-01T00:00:00+00:00")
    started = tmp_path / "started"
    process = subprocess.Popen(
        [sys.executable, "-c", _SAVE_THAT_HANGS, str(registry.models / "v2"), str(started), str(model_dir)],
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        deadline = time.monotonic() + 60
        while not started.exists():
            assert process.poll() is None and time.monotonic() < deadline, "the save never started"
            time.sleep(0.05)
        assert len(_staging(registry.models)) == 1
        registry.remove_stale_staging()
        assert len(_staging(registry.models)) == 1, "the staging of a live save was removed"
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    assert len(_staging(registry.models)) == 1  # what kill -9 leaves
    assert [m["version"] for m in registry.versions()] == ["v1"]
    assert _staging(registry.models) == []


def test_leftovers_untouched_for_minutes_are_removed_and_fresh_ones_kept(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    registry.models.mkdir(parents=True)
    old_staging = registry.models / ".20260101-000000-ab12.x1y2z3_4"  # named as before owners were recorded
    old_staging.mkdir()
    (old_staging / "model.joblib").write_bytes(b"half")
    old_pointer = registry.models / ".active.k9j8h7g6"
    old_pointer.write_text("v1\n")
    fresh = registry.models / ".20260101-000001-cd34.a1b2c3d4"
    fresh.mkdir()
    other = registry.models / ".staging"
    other.mkdir()
    an_hour_ago = time.time() - 3600
    for path in (old_staging / "model.joblib", old_staging, old_pointer, other):
        os.utime(path, (an_hour_ago, an_hour_ago))
    assert sorted(p.name for p in registry.remove_stale_staging()) == sorted([old_staging.name, old_pointer.name])
    assert sorted(p.name for p in _staging(registry.models)) == sorted([fresh.name, other.name])
