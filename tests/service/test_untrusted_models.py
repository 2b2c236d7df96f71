"""A planted pickle is refused on every path that loads a model, and nothing in it ever runs.

The paths of issue 13: `xinxi models activate`, `PUT /v1/models/active`,
`xinxi predict --model` (one process and a pool of workers), the poller after
ACTIVE is edited by hand (no key needed), and `xinxi serve`. Also: converting
a pickled version on request, the start-up check of the data directory's
permissions, and `xinxi serve` keeping no model in its own process.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import service.cli
from model import ModelRegistry, Predictor
from service.app import create_app
from service.security import data_dir_warning
from service.settings import get_settings
from tests.model.test_model_files import _pickled_version, plant_pickle
from tests.service.conftest import SAMPLE_ITEM, make_settings, started
from tests.service.test_api import assert_error
from tests.service.test_cli import assert_fails, run

KEY = "k3y-for-model-files-7d2e"
PLANTED = "20990101-000000-e71c"


@pytest.fixture
def xinxi(private_data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("XINXI_DATA_DIR", str(private_data_dir))
    get_settings.cache_clear()
    return CliRunner()


def test_the_command_line_refuses_a_planted_pickle_everywhere(
    xinxi: CliRunner, private_data_dir: Path, model_dir: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    planted = plant_pickle(model_dir, private_data_dir / "models" / PLANTED, marker)
    advice = f"Retrain with `xinxi train`, or convert this version once with `xinxi models convert {PLANTED}`"
    assert_fails(run(xinxi, "models", "activate", PLANTED), advice)
    assert ModelRegistry(private_data_dir).active_id() == model_dir.name
    assert_fails(run(xinxi, "predict", "--model", str(planted), "--text", SAMPLE_ITEM["text"]), advice)
    table = tmp_path / "items.csv"
    table.write_text("标题,正文\n招商,县里召开招商引资推进会。\n", encoding="utf-8")
    for workers in ("1", "2"):
        result = run(xinxi, "predict", "--model", str(planted), "--input", str(table), "--output",
                     str(tmp_path / f"out{workers}.csv"), "--workers", workers)
        assert_fails(result, advice)
    assert not marker.exists()


@pytest.mark.parametrize("how", ["joblib", "npz-object"])
def test_the_api_and_the_poller_refuse_a_planted_pickle(
    private_data_dir: Path, model_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    marker = tmp_path / "marker"
    plant_pickle(model_dir, private_data_dir / "models" / PLANTED, marker, how)
    settings = make_settings(private_data_dir, tmp_path, api_keys=KEY, model_poll_seconds=0)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        active = started(client).app.state.active_model  # type: ignore[attr-defined]
        response = client.put("/v1/models/active", json={"version": PLANTED}, headers={"Authorization": f"Bearer {KEY}"})
        error = assert_error(response, 409, "model_rejected")
        assert PLANTED in error["message_en"]
        assert ModelRegistry(private_data_dir).active_id() == model_dir.name
        # Whoever can write the data directory edits ACTIVE by hand; the poller needs no key.
        (private_data_dir / "models" / "ACTIVE").write_text(PLANTED + "\n", encoding="utf-8")
        with caplog.at_level(logging.ERROR, logger="xinxi.service"):
            assert active.refresh() is False
        assert any(f"could not load model {PLANTED}" in r.getMessage() for r in caplog.records)
        ready = client.get("/readyz").json()
        assert ready["status"] == "degraded" and PLANTED in ready["reason"]
        predicted = client.post("/v1/predict", json={"items": [SAMPLE_ITEM]})
        assert predicted.status_code == 200 and predicted.json()["model_version"] == model_dir.name
    assert not marker.exists()


def test_models_convert_asks_first_then_writes_a_new_version_and_activates_it(
    xinxi: CliRunner, private_data_dir: Path, fitted, tmp_path: Path
) -> None:
    registry = ModelRegistry(private_data_dir)
    old = _pickled_version(registry, fitted, "20260101-000000-0003").name
    registry.activate(old)
    before = {m["version"] for m in registry.versions()}
    declined = run(xinxi, "models", "convert", old, input="n\n")
    assert_fails(declined, "unpickling runs any code written into the file")
    assert "not converted" in declined.output and {m["version"] for m in registry.versions()} == before
    result = run(xinxi, "models", "convert", old, "--yes")
    assert result.exit_code == 0, result.output
    (new_version,) = {m["version"] for m in registry.versions()} - before
    assert registry.active_id() == new_version and f"{new_version} is now active in place of {old}" in result.output
    predicted = run(xinxi, "predict", "--text", SAMPLE_ITEM["text"])
    assert predicted.exit_code == 0, predicted.output
    assert new_version in predicted.stdout


@pytest.fixture
def serve_records(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """`xinxi serve` up to uvicorn, which only records its call; the model check in a child process is real."""
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: calls.append(kwargs))
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")
    return calls


def test_serve_with_only_a_pickled_version_says_what_to_do_and_does_not_start(
    xinxi: CliRunner, private_data_dir: Path, fitted, serve_records: list[dict[str, Any]],
    capfd: pytest.CaptureFixture[str],
) -> None:
    registry = ModelRegistry(private_data_dir)
    old = _pickled_version(registry, fitted, "20260101-000000-0004").name
    registry.activate(old)
    result = run(xinxi, "serve")
    assert result.exit_code == 2 and serve_records == []
    said = " ".join(capfd.readouterr().err.split())  # the child process that checked the model said it
    assert f"Retrain with `xinxi train`, or convert this version once with `xinxi models convert {old}`" in said


def test_serve_keeps_no_model_in_its_own_process(
    xinxi: CliRunner, monkeypatch: pytest.MonkeyPatch, serve_records: list[dict[str, Any]]
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("xinxi serve loaded a model in its own process")

    monkeypatch.setattr(Predictor, "__init__", refuse)
    monkeypatch.setattr(Predictor, "load", refuse)
    monkeypatch.setattr(service.cli.Predictor, "load", refuse)
    result = run(xinxi, "serve", "--workers", "2")
    assert result.exit_code == 0, result.output  # the child process loaded and warmed the model
    assert serve_records and serve_records[0]["workers"] == 2


def test_serve_refuses_to_start_when_the_active_model_does_not_load(
    xinxi: CliRunner, private_data_dir: Path, model_dir: Path, serve_records: list[dict[str, Any]]
) -> None:
    with (private_data_dir / "models" / model_dir.name / "arrays.npz").open("ab") as stream:
        stream.write(b"damage")
    assert run(xinxi, "serve").exit_code == 2 and serve_records == []


def test_a_data_directory_others_can_write_is_named_at_start_up(
    private_data_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert data_dir_warning(private_data_dir) is None
    models = private_data_dir / "models"
    os.chmod(models, 0o777)
    try:
        with caplog.at_level(logging.WARNING, logger="xinxi.service"):
            with TestClient(create_app(make_settings(private_data_dir, tmp_path))):
                pass
    finally:
        os.chmod(models, 0o755)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    expected = f"{models} is writable by group and others"
    assert any(expected in w and f"Run `chmod -R go-w {private_data_dir}`" in w for w in warnings), warnings
