"""The registry over the API: activate with a reason, roll back, the audit log, the version active at a time."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from model import ModelRegistry
from service import cli
from service.app import create_app
from service.settings import get_settings
from tests.service.conftest import SAMPLE_ITEM, copy_version, make_settings, started
from tests.service.test_api import assert_error

KEY = "k3y-for-model-routes-9a7c"
AUTH = {"Authorization": f"Bearer {KEY}"}
WHO = "api-key:" + hashlib.sha256(KEY.encode()).hexdigest()[:12]


def test_activate_rollback_and_the_audit_log_over_the_api(
    private_data_dir: Path, model_dir: Path, tmp_path: Path
) -> None:
    second = copy_version(private_data_dir, model_dir, "20990101-000000-aaaa")
    settings = make_settings(private_data_dir, tmp_path, api_keys=[KEY], model_poll_seconds=0)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        started(client)
        assert_error(client.post(f"/v1/models/{second}/activate"), 401, "unauthorized")
        assert_error(client.post("/v1/models/20990909-000000-none/activate", headers=AUTH), 404, "not_found")
        assert_error(client.post("/v1/models/rollback", headers=AUTH), 409, "no_rollback")
        assert_error(client.get("/v1/models/rollback"), 409, "no_rollback")

        response = client.post(f"/v1/models/{second}/activate", headers=AUTH, json={"reason": "试用新版本"})
        assert response.status_code == 200 and response.json()["version"] == second
        assert client.post("/v1/predict", json={"items": [SAMPLE_ITEM]}).json()["model_version"] == second
        audit = client.get("/v1/models/audit").json()
        assert [(e["version"], e["previous"], e["who"], e["why"], e["action"]) for e in audit] == [
            (model_dir.name, None, None, None, "activate"), (second, model_dir.name, WHO, "试用新版本", "activate"),
        ]
        # Which model tagged an item at a time: the one activated last before it.
        assert client.get("/v1/models/at", params={"time": audit[0]["at"]}).json()["version"] == model_dir.name
        assert client.get("/v1/models/at", params={"time": audit[1]["at"]}).json()["version"] == second
        assert_error(client.get("/v1/models/at", params={"time": "2020-03-03T10:00"}), 404, "not_found")
        assert_error(client.get("/v1/models/at", params={"time": "3月3日"}), 422, "validation_error")

        # GET shows what a rollback would bring back, without a key and without switching.
        preview = client.get("/v1/models/rollback")
        assert preview.status_code == 200 and preview.json()["version"] == model_dir.name
        assert preview.json()["active"] is False
        assert ModelRegistry(private_data_dir).active_id() == second
        back = client.post("/v1/models/rollback", headers=AUTH)
        assert back.status_code == 200 and back.json()["version"] == model_dir.name
        last = client.get("/v1/models/audit").json()[-1]
        assert (last["version"], last["previous"], last["action"]) == (model_dir.name, second, "rollback")
        assert client.get(f"/v1/models/{second}").json()["active"] is False
        assert_error(client.get("/v1/models/20990909-000000-none"), 404, "not_found")
        # The PUT of earlier releases still works, and is logged too.
        assert client.put("/v1/models/active", headers=AUTH, json={"version": second}).status_code == 200
        assert ModelRegistry(private_data_dir).audit_log()[-1]["who"] == WHO


def test_a_corrupted_model_file_is_refused_at_activation_and_the_old_version_keeps_serving(
    private_data_dir: Path, model_dir: Path, tmp_path: Path
) -> None:
    damaged = copy_version(private_data_dir, model_dir, "20990202-000000-bad1")
    model_file = next(p for p in (private_data_dir / "models" / damaged).iterdir() if p.name != "manifest.json")
    data = bytearray(model_file.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the middle, same size
    model_file.write_bytes(bytes(data))
    settings = make_settings(private_data_dir, tmp_path, api_keys=[KEY], model_poll_seconds=0)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        started(client)
        error = assert_error(client.post(f"/v1/models/{damaged}/activate", headers=AUTH), 409, "model_rejected")
        assert "SHA-256" in error["message_en"] and "was not changed" in error["message_en"]
        assert ModelRegistry(private_data_dir).active_id() == model_dir.name
        assert len(ModelRegistry(private_data_dir).audit_log()) == 1  # the fixture's activation only
        assert client.post("/v1/predict", json={"items": [SAMPLE_ITEM]}).json()["model_version"] == model_dir.name


def test_xinxi_models_diff_at_and_rollback(
    private_data_dir: Path, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.store import Store
    from tests.conftest import small_items, write_jsonl
    from tests.service.test_retrain_jobs import record
    from training import HOLDOUT_DATA, load_items
    from training.trainer import train_version

    registry = ModelRegistry(private_data_dir)
    second = train_version(small_items()[::5], registry=registry, activate=False, folds=2).name
    holdout = write_jsonl(load_items(HOLDOUT_DATA, require_labels=True)[0][::6], tmp_path / "holdout.jsonl")
    monkeypatch.setenv("XINXI_DATA_DIR", str(private_data_dir))
    monkeypatch.setenv("XINXI_RETRAIN_HOLDOUT", str(holdout))
    monkeypatch.setenv("XINXI_DATABASE_URL", f"sqlite:///{tmp_path / 'diff.db'}")
    get_settings.cache_clear()
    store = Store(f"sqlite:///{tmp_path / 'diff.db'}")
    store.migrate()
    record(store, small_items()[1::3][:30])
    store.close()
    runner = CliRunner()

    diff = runner.invoke(cli.app, ["models", "diff", model_dir.name, second])
    assert diff.exit_code == 0, diff.output
    report = json.loads(diff.stdout.splitlines()[-1])
    assert report["holdout"]["items"] == 31 and set(report["holdout"]["per_label"]) == set(
        report["stored"]["gained"])
    # The 60-item model tags some of the 30 stored items otherwise than the 300-item one.
    assert report["stored"]["items"] == 30 and 0 < report["stored"]["changed"] <= 30
    assert f"{report['stored']['changed']} of 30 change tags" in " ".join(diff.stderr.split())

    assert runner.invoke(cli.app, ["models", "activate", second, "--reason", "diff looked fine"]).exit_code == 0
    entry = registry.audit_log()[-1]
    assert (entry["version"], entry["why"]) == (second, "diff looked fine") and entry["who"].startswith("os-user:")
    at = runner.invoke(cli.app, ["models", "at", entry["at"]])
    assert at.exit_code == 0 and at.stdout.strip() == second
    back = runner.invoke(cli.app, ["models", "rollback"])
    assert back.exit_code == 0 and registry.active_id() == model_dir.name
    assert runner.invoke(cli.app, ["models", "at", "not a time"]).exit_code == 2
    assert runner.invoke(cli.app, ["retrain", "--force"]).exit_code == 2  # --force needs --reason

