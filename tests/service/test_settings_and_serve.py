"""Settings that must not leak, and what `xinxi serve` does to the file system around it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from typer.testing import CliRunner

import service.cli
from service.cli import app
from service.settings import Settings, get_settings


def test_the_database_password_stays_out_of_repr() -> None:
    settings = Settings(database_url="postgresql://u:secret@h/db")
    assert "secret" not in repr(settings)
    assert "secret" not in str(settings)
    assert settings.resolved_database_url == "postgresql://u:secret@h/db"


@pytest.fixture
def serve_without_serving(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Run `xinxi serve` up to uvicorn; each call of uvicorn.run records the metrics directory it saw."""
    calls: list[dict[str, Any]] = []

    def run(*args: Any, **kwargs: Any) -> None:
        directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        calls.append({"directory": directory, "exists": bool(directory) and Path(directory).is_dir(), **kwargs})

    monkeypatch.setenv("XINXI_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(uvicorn, "run", run)
    monkeypatch.setattr(service.cli, "prepare_model_in_child", lambda: None)
    get_settings.cache_clear()
    yield calls
    get_settings.cache_clear()


def test_serve_never_deletes_a_prometheus_directory_the_user_named(
    serve_without_serving: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine = tmp_path / "my-files"
    mine.mkdir()
    (mine / "precious.txt").write_text("keep me", encoding="utf-8")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(mine))
    result = CliRunner().invoke(app, ["serve", "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert (mine / "precious.txt").read_text(encoding="utf-8") == "keep me"
    assert serve_without_serving[0]["directory"] == str(mine)


def test_serve_with_workers_uses_a_private_metrics_directory_and_removes_it(
    serve_without_serving: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    result = CliRunner().invoke(app, ["serve", "--workers", "2"])
    assert result.exit_code == 0, result.output
    call = serve_without_serving[0]
    assert call["workers"] == 2 and call["exists"]
    directory = Path(call["directory"])
    assert directory.parent == tmp_path / "data" / "prometheus"
    assert not directory.exists()
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ
