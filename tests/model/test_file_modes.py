"""Files and directories xinxi renames into place get the umask's mode, not tempfile's 0600/0700."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from model import ModelRegistry
from model.artifact import save_version, umask_mode


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_umask_mode_follows_the_umask(umask_022: None) -> None:
    assert umask_mode() == 0o644 and umask_mode(directory=True) == 0o755
    os.umask(0o027)
    assert umask_mode() == 0o640 and umask_mode(directory=True) == 0o750


def test_a_saved_version_and_the_active_pointer_are_readable_by_others(umask_022: None, tmp_path: Path, fitted) -> None:
    registry = ModelRegistry(tmp_path)
    directory = save_version(fitted[0], {"version": "v1"}, registry.models / "v1")
    registry.activate("v1")
    assert mode(directory) == 0o755
    assert {p.name: mode(p) for p in directory.iterdir()} == {
        "model.json": 0o644, "vocabulary.json": 0o644, "arrays.npz": 0o644, "manifest.json": 0o644
    }
    assert mode(registry.models / "ACTIVE") == 0o644
