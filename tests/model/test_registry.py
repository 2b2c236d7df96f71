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

from model import ArtifactError, ModelNotFoundError, ModelRegistry


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


@pytest.mark.parametrize(
    "version", ["", "../v1", "a/b", ".hidden", "a\\b", "v1\x00", "v1\nx", " v1", "\u202ev1", "v" * 129, "/abs", "~"]
)
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


def test_activations_are_logged_and_answer_which_version_was_active_when(tmp_path: Path, model_dir: Path) -> None:
    for version, created in (("v1", "2026-01-01T00:00:00+00:00"), ("v2", "2026-02-01T00:00:00+00:00")):
        _add(tmp_path, model_dir, version, created)
    registry = ModelRegistry(tmp_path)
    registry.activate("v1", who="os-user:li", why="first")
    registry.activate("v2", who="api-key:0123456789ab", why="better on the holdout", action="retrain")
    log = registry.audit_log()
    assert [(e["version"], e["previous"], e["who"], e["action"]) for e in log] == [
        ("v1", None, "os-user:li", "activate"), ("v2", "v1", "api-key:0123456789ab", "retrain")
    ]
    naive = log[0]["at"][: -len("+00:00")]  # the first activation's own time without its offset: read as UTC
    assert registry.active_at(naive)["version"] == "v1"
    assert registry.active_at(log[1]["at"])["version"] == "v2"
    assert registry.active_at("2000-01-01") is None
    assert registry.previous_id() == "v1"
    # An offset is honoured: one hour east of UTC is an hour earlier, before anything was activated.
    assert registry.active_at(log[0]["at"][:19] + "+01:00") is None
    with pytest.raises(ValueError, match="is not a time"):
        registry.active_at("3 March")
    (tmp_path / "models" / "AUDIT.jsonl").open("a").write('{"at": "2026-')  # a torn last line of a crash
    assert len(registry.audit_log()) == 2


def test_before_the_audit_log_began_the_first_entrys_predecessor_answers(tmp_path: Path, model_dir: Path) -> None:
    _add(tmp_path, model_dir, "old", "2026-01-01T00:00:00+00:00")
    _add(tmp_path, model_dir, "new", "2026-02-01T00:00:00+00:00")
    (tmp_path / "models" / "ACTIVE").write_text("old\n")  # activated by a release without the log
    registry = ModelRegistry(tmp_path)
    registry.activate("new")
    found = registry.active_at("2020-01-01T00:00")
    assert found["version"] == "old" and found["since"] is None


def test_pruning_keeps_the_newest_and_never_the_active_or_previous_one(tmp_path: Path, model_dir: Path) -> None:
    for n in range(1, 6):
        _add(tmp_path, model_dir, f"v{n}", f"2026-0{n}-01T00:00:00+00:00")
    registry = ModelRegistry(tmp_path)
    registry.activate("v1")
    registry.activate("v2")  # v2 active, v1 previous: both old, both kept
    assert registry.prune(keep=2) == ["v3"]
    assert [m["version"] for m in registry.versions()] == ["v1", "v2", "v4", "v5"]
    assert sorted(p.name for p in (tmp_path / "models").iterdir() if p.name.startswith(".") and p.is_dir()) == []
    with pytest.raises(ValueError, match="keep at least one"):
        registry.prune(keep=0)


def test_a_version_written_elsewhere_is_imported_whole_by_one_rename(tmp_path: Path, model_dir: Path) -> None:
    elsewhere = tmp_path / "job" / "staging"
    shutil.copytree(model_dir, elsewhere / model_dir.name)
    registry = ModelRegistry(tmp_path / "data")
    target = registry.import_version(elsewhere / model_dir.name)
    assert target == registry.path(model_dir.name) and not (elsewhere / model_dir.name).exists()
    assert [m["version"] for m in registry.versions()] == [model_dir.name]
    shutil.copytree(model_dir, elsewhere / model_dir.name)
    with pytest.raises(ArtifactError, match="already exists"):
        registry.import_version(elsewhere / model_dir.name)
