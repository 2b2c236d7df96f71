"""Start-up, hot swap of the active model, and API keys."""

from __future__ import annotations

import gc
import json
import logging
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import service.active_model
from model import ModelRegistry, Predictor
from model.state import STATE_FILES
from service.app import create_app
from tests.service.conftest import (
    SAMPLE_ITEM,
    copy_version,
    make_settings,
    malformed_version,
    no_topic_head,
    short_thresholds,
    started,
    wrong_width,
)
from tests.service.test_api import assert_error

KEY = "k3y-for-tests-6f1c2a9d"


def test_a_hundred_concurrent_requests_while_the_model_loads_get_503(
    private_data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    real_load = Predictor.load

    def slow_load(directory):
        assert release.wait(30), "test never released the loader"
        return real_load(directory)

    monkeypatch.setattr(service.active_model.Predictor, "load", slow_load)
    with TestClient(create_app(make_settings(private_data_dir, tmp_path)), raise_server_exceptions=False) as client:
        with ThreadPoolExecutor(max_workers=25) as pool:
            responses = list(pool.map(lambda _: client.post("/v1/predict", json={"items": [SAMPLE_ITEM]}), range(100)))
        assert {r.status_code for r in responses} == {503}
        error = assert_error(responses[0], 503, "model_not_loaded")
        assert "loading" in error["message_en"]
        assert responses[0].headers["Retry-After"]
        assert client.get("/healthz").status_code == 200
        assert_error(client.get("/readyz"), 503, "not_ready")
        assert_error(client.get("/v1/models/active"), 503, "model_not_loaded")
        release.set()
        started(client)
        assert client.post("/v1/predict", json={"items": [SAMPLE_ITEM]}).status_code == 200
        assert client.get("/readyz").status_code == 200


def test_without_any_model_the_service_answers_503_and_says_what_to_do(tmp_path: Path) -> None:
    with TestClient(create_app(make_settings(tmp_path / "empty", tmp_path))) as client:
        active = client.app.state.active_model  # type: ignore[attr-defined]
        active.refresh()
        assert active.state == "missing"
        error = assert_error(client.post("/v1/predict", json={"items": [SAMPLE_ITEM]}), 503, "model_not_loaded")
        assert "xinxi train" in error["message_en"]
        ready = assert_error(client.get("/readyz"), 503, "not_ready")
        assert ready["message_en"] == "not ready: model missing"
        assert client.get("/v1/taxonomy").status_code == 200  # the default labels need no model


def test_a_newly_activated_model_is_swapped_in_without_restart(
    private_data_dir: Path, model_dir: Path, tmp_path: Path
) -> None:
    registry = ModelRegistry(private_data_dir)
    with TestClient(create_app(make_settings(private_data_dir, tmp_path, model_poll_seconds=0))) as client:
        active = started(client).app.state.active_model  # type: ignore[attr-defined]
        before = client.post("/v1/predict", json={"items": [SAMPLE_ITEM]}).json()
        assert before["model_version"] == model_dir.name
        registry.activate(copy_version(private_data_dir, model_dir, "20990101-000000-beef"))
        assert active.refresh() is True  # what the poller does every XINXI_MODEL_POLL_SECONDS
        after = client.post("/v1/predict", json={"items": [SAMPLE_ITEM]}).json()
        assert after["model_version"] == "20990101-000000-beef"
        assert client.get("/v1/models/active").json()["version"] == "20990101-000000-beef"
        assert after["results"][0]["topics"] == before["results"][0]["topics"]


def test_a_replaced_model_is_freed_not_kept_beside_the_new_one(
    private_data_dir: Path, model_dir: Path, tmp_path: Path
) -> None:
    """Nothing (the batcher, caches, the metrics) keeps a replaced model alive: each switch would cost a model's memory."""
    registry = ModelRegistry(private_data_dir)
    with TestClient(create_app(make_settings(private_data_dir, tmp_path, model_poll_seconds=0))) as client:
        active = started(client).app.state.active_model  # type: ignore[attr-defined]
        assert client.post("/v1/predict", json={"items": [SAMPLE_ITEM]}).status_code == 200
        replaced = weakref.ref(active.predictor)
        registry.activate(copy_version(private_data_dir, model_dir, "20990101-000000-f00d"))
        assert active.refresh() is True
        answer = client.post("/v1/predict", json={"items": [SAMPLE_ITEM]}).json()
        assert answer["model_version"] == "20990101-000000-f00d"
        gc.collect()
        assert replaced() is None


def test_the_poller_picks_up_a_new_model(private_data_dir: Path, model_dir: Path, tmp_path: Path) -> None:
    with TestClient(create_app(make_settings(private_data_dir, tmp_path, model_poll_seconds=0.05))) as client:
        active = started(client).app.state.active_model  # type: ignore[attr-defined]
        active.ready.clear()
        ModelRegistry(private_data_dir).activate(copy_version(private_data_dir, model_dir, "20990202-000000-cafe"))
        assert active.ready.wait(30)
        assert (
            client.post("/v1/predict", json={"items": [SAMPLE_ITEM]}).json()["model_version"] == "20990202-000000-cafe"
        )


def test_a_damaged_new_model_is_refused_and_the_old_one_keeps_serving(
    private_data_dir: Path, model_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with TestClient(create_app(make_settings(private_data_dir, tmp_path, model_poll_seconds=0))) as client:
        active = started(client).app.state.active_model  # type: ignore[attr-defined]
        version = copy_version(private_data_dir, model_dir, "20990303-000000-dead")
        with (private_data_dir / "models" / version / "arrays.npz").open("ab") as stream:
            stream.write(b"damage")
        (private_data_dir / "models" / "ACTIVE").write_text(version + "\n")
        with caplog.at_level(logging.ERROR, logger="xinxi.service"):
            assert active.refresh() is False
        assert any("could not load model 20990303-000000-dead" in r.getMessage() for r in caplog.records)
        response = client.post("/v1/predict", json={"items": [SAMPLE_ITEM]})
        assert response.status_code == 200
        assert response.json()["model_version"] == model_dir.name


@pytest.mark.parametrize("damage", [no_topic_head, wrong_width, short_thresholds])
def test_a_malformed_bundle_with_good_checksums_is_refused_by_the_poller(
    private_data_dir: Path, model_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, damage
) -> None:
    with TestClient(create_app(make_settings(private_data_dir, tmp_path, model_poll_seconds=0))) as client:
        active = started(client).app.state.active_model  # type: ignore[attr-defined]
        version = malformed_version(private_data_dir, model_dir, "20990505-000000-bad0", damage)
        ModelRegistry(private_data_dir).activate(version)
        with caplog.at_level(logging.ERROR, logger="xinxi.service"):
            assert active.refresh() is False
            assert active.refresh() is False  # remembered: not loaded again on every poll
        failures = [r for r in caplog.records if f"could not load model {version}" in r.getMessage()]
        assert len(failures) == 1 and failures[0].exc_info is not None
        assert active.state == "ready"
        response = client.post("/v1/predict", json={"items": [SAMPLE_ITEM]})
        assert response.status_code == 200 and response.json()["model_version"] == model_dir.name


def test_a_malformed_first_model_leaves_the_state_failed_not_loading(
    private_data_dir: Path, model_dir: Path, tmp_path: Path
) -> None:
    ModelRegistry(private_data_dir).activate(
        malformed_version(private_data_dir, model_dir, "20990505-000000-bad1", wrong_width)
    )
    with TestClient(create_app(make_settings(private_data_dir, tmp_path, model_poll_seconds=0))) as client:
        active = client.app.state.active_model  # type: ignore[attr-defined]
        active.refresh()
        assert active.state == "failed"
        error = assert_error(client.post("/v1/predict", json={"items": [SAMPLE_ITEM]}), 503, "model_not_loaded")
        assert "could not be loaded" in error["message_en"]


def test_the_poller_survives_a_malformed_bundle_and_any_error(
    private_data_dir: Path, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = ModelRegistry(private_data_dir)
    with TestClient(create_app(make_settings(private_data_dir, tmp_path, model_poll_seconds=0.02))) as client:
        active = started(client).app.state.active_model  # type: ignore[attr-defined]
        registry.activate(malformed_version(private_data_dir, model_dir, "20990606-000000-bad2", wrong_width))
        failed = threading.Event()
        real_active_id = active.registry.active_id

        def active_id_after_a_failure():
            if failed.is_set():
                return real_active_id()
            failed.set()
            raise RuntimeError("an error nobody foresaw")

        monkeypatch.setattr(active.registry, "active_id", active_id_after_a_failure)
        assert failed.wait(30)
        active.ready.clear()
        registry.activate(copy_version(private_data_dir, model_dir, "20990606-000000-600d"))
        assert active.ready.wait(30), "the poller died"
        assert client.post("/v1/predict", json={"items": [SAMPLE_ITEM]}).json()["model_version"] == (
            "20990606-000000-600d"
        )


@pytest.mark.parametrize("damage", [no_topic_head, short_thresholds])
def test_activating_a_malformed_version_answers_409_and_changes_nothing(
    private_data_dir: Path, model_dir: Path, tmp_path: Path, damage
) -> None:
    version = malformed_version(private_data_dir, model_dir, "20990707-000000-bad3", damage)
    settings = make_settings(private_data_dir, tmp_path, api_keys=KEY, model_poll_seconds=0)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        started(client)
        response = client.put("/v1/models/active", json={"version": version}, headers={"Authorization": f"Bearer {KEY}"})
        error = assert_error(response, 409, "model_rejected")
        assert version in error["message_en"]
        assert ModelRegistry(private_data_dir).active_id() == model_dir.name
        assert client.get("/v1/models/active").json()["version"] == model_dir.name
        assert client.post("/v1/predict", json={"items": [SAMPLE_ITEM]}).json()["model_version"] == model_dir.name


def test_activating_a_repaired_version_loads_it_although_it_failed_before(
    private_data_dir: Path, model_dir: Path, tmp_path: Path
) -> None:
    version = malformed_version(private_data_dir, model_dir, "20990808-000000-bad4", short_thresholds)
    settings = make_settings(private_data_dir, tmp_path, api_keys=KEY, model_poll_seconds=0)
    with TestClient(create_app(settings)) as client:
        active = started(client).app.state.active_model  # type: ignore[attr-defined]
        ModelRegistry(private_data_dir).activate(version)
        assert active.refresh() is False
        _repair(private_data_dir / "models" / version, model_dir)
        response = client.put("/v1/models/active", json={"version": version}, headers={"Authorization": f"Bearer {KEY}"})
        assert response.status_code == 200, response.text
        assert response.json()["version"] == version
        assert active.state == "ready"
        assert client.post("/v1/predict", json={"items": [SAMPLE_ITEM]}).json()["model_version"] == version


def _repair(target: Path, source: Path) -> None:
    """Put ``source``'s model files back into the malformed version ``target``, keeping its id."""
    for name in STATE_FILES:
        (target / name).write_bytes((source / name).read_bytes())
    manifest = json.loads((target / "manifest.json").read_text(encoding="utf-8"))
    original = json.loads((source / "manifest.json").read_text(encoding="utf-8"))
    manifest["files"], manifest["thresholds"] = original["files"], original["thresholds"]
    (target / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")


def test_prediction_is_open_by_default_and_keyed_when_configured(
    private_data_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(private_data_dir, tmp_path, api_keys=f"other-key,{KEY}", predict_requires_key=True)
    with caplog.at_level(logging.DEBUG), TestClient(create_app(settings)) as client:
        started(client)
        missing = assert_error(client.post("/v1/predict", json={"items": [SAMPLE_ITEM]}), 401, "unauthorized")
        assert "Bearer" in missing["message_en"]
        wrong = client.post("/v1/predict", json={"items": [SAMPLE_ITEM]}, headers={"Authorization": "Bearer nope"})
        assert_error(wrong, 401, "unauthorized")
        assert wrong.headers["WWW-Authenticate"] == "Bearer"
        basic = client.post("/v1/predict", json={"items": [SAMPLE_ITEM]}, headers={"Authorization": f"Basic {KEY}"})
        assert_error(basic, 401, "unauthorized")
        good = client.post("/v1/predict", json={"items": [SAMPLE_ITEM]}, headers={"Authorization": f"Bearer {KEY}"})
        assert good.status_code == 200
        assert client.get("/healthz").status_code == 200  # health stays open
    assert not any(KEY in r.getMessage() for r in caplog.records)
    assert KEY not in repr(settings)


def test_activating_a_model_needs_a_key(private_data_dir: Path, model_dir: Path, tmp_path: Path) -> None:
    version = copy_version(private_data_dir, model_dir, "20990404-000000-f00d")
    with TestClient(create_app(make_settings(private_data_dir, tmp_path, model_poll_seconds=0))) as unkeyed:
        error = assert_error(unkeyed.put("/v1/models/active", json={"version": version}), 401, "unauthorized")
        assert "XINXI_API_KEYS" in error["message_en"]
    settings = make_settings(private_data_dir, tmp_path, api_keys=KEY, model_poll_seconds=0)
    with TestClient(create_app(settings)) as client:
        started(client)
        assert_error(client.put("/v1/models/active", json={"version": version}), 401, "unauthorized")
        auth = {"Authorization": f"Bearer {KEY}"}
        assert_error(client.put("/v1/models/active", json={"version": "nope"}, headers=auth), 404, "not_found")
        assert_error(client.put("/v1/models/active", json={"version": "../x"}, headers=auth), 404, "not_found")
        switched = client.put("/v1/models/active", json={"version": version}, headers=auth)
        assert switched.status_code == 200 and switched.json()["version"] == version
        assert ModelRegistry(private_data_dir).active_id() == version
        assert client.post("/v1/predict", json={"items": [SAMPLE_ITEM]}).json()["model_version"] == version


@pytest.mark.parametrize(
    ("method", "path", "body", "content_type"),
    [
        ("PUT", "/v1/models/active", b"{not json", "application/json"),
        ("PUT", "/v1/models/active", b'{"version": 7}', "application/json"),
        ("POST", "/v1/predict", b"\xff{[", "application/json"),
        ("POST", "/v1/batch", b"--x\r\nbroken", "multipart/form-data; boundary=x"),
        ("POST", "/v1/batch", b"", "multipart/form-data; boundary=x"),
    ],
)
def test_a_keyed_route_checks_the_key_before_it_reads_the_body(
    private_data_dir: Path, tmp_path: Path, method: str, path: str, body: bytes, content_type: str
) -> None:
    settings = make_settings(private_data_dir, tmp_path, api_keys=KEY, predict_requires_key=True)
    with TestClient(create_app(settings)) as client:
        response = client.request(method, path, content=body, headers={"Content-Type": content_type})
        assert_error(response, 401, "unauthorized")
        keyed = client.request(
            method, path, content=body, headers={"Content-Type": content_type, "Authorization": f"Bearer {KEY}"}
        )
        assert keyed.status_code in {400, 422}, keyed.text  # with the key, the body is what is wrong


def test_error_bodies_name_no_server_path_and_the_log_keeps_it(
    private_data_dir: Path, model_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    version = copy_version(private_data_dir, model_dir, "20991212-000000-dead")
    with (private_data_dir / "models" / version / "arrays.npz").open("ab") as stream:
        stream.write(b"damage")
    settings = make_settings(private_data_dir, tmp_path, api_keys=KEY, model_poll_seconds=0)
    auth = {"Authorization": f"Bearer {KEY}"}
    with caplog.at_level(logging.WARNING), TestClient(create_app(settings)) as client:
        active = started(client).app.state.active_model  # type: ignore[attr-defined]
        rejected = client.put("/v1/models/active", json={"version": version}, headers=auth)
        error = assert_error(rejected, 409, "model_rejected")
        assert "…/arrays.npz does not match the SHA-256" in error["message_en"]
        missing = client.put("/v1/models/active", json={"version": "20990101-000000-0000"}, headers=auth)
        assert "in …/models" in assert_error(missing, 404, "not_found")["message_en"]
        ModelRegistry(private_data_dir).activate(version)
        active.refresh()
        degraded = client.get("/readyz")
        assert degraded.json()["status"] == "degraded"
        for response in (rejected, missing, degraded):
            assert str(tmp_path) not in response.text and str(private_data_dir) not in response.text
    assert any(str(private_data_dir) in r.getMessage() for r in caplog.records)


def test_a_server_without_any_key_warns_at_start_up_that_keyed_routes_are_closed(
    private_data_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def warnings_at_start(**overrides) -> list[str]:
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="xinxi.service"):
            with TestClient(create_app(make_settings(private_data_dir, tmp_path, **overrides))):
                pass
        return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]

    unkeyed = [m for m in warnings_at_start() if "XINXI_API_KEYS" in m]
    assert len(unkeyed) == 1 and "every state-changing route" in unkeyed[0]
    assert not [m for m in warnings_at_start(api_keys=KEY) if "XINXI_API_KEYS" in m]


def test_readyz_reports_an_unreachable_store(private_data_dir: Path, tmp_path: Path) -> None:
    settings = make_settings(private_data_dir, tmp_path, database_url="postgresql+psycopg://nobody@127.0.0.1:1/none")
    with TestClient(create_app(settings)) as client:
        started(client)
        error = assert_error(client.get("/readyz"), 503, "not_ready")
        assert "store unreachable" in error["message_en"]
        assert client.post("/v1/predict", json={"items": [SAMPLE_ITEM]}).status_code == 200


def test_readyz_is_degraded_while_active_names_a_version_that_failed_to_load(
    private_data_dir: Path, model_dir: Path, tmp_path: Path
) -> None:
    registry = ModelRegistry(private_data_dir)
    with TestClient(create_app(make_settings(private_data_dir, tmp_path, model_poll_seconds=0))) as client:
        active = started(client).app.state.active_model  # type: ignore[attr-defined]
        version = malformed_version(private_data_dir, model_dir, "20991111-000000-bad7", wrong_width)
        registry.activate(version)
        assert active.refresh() is False
        response = client.get("/readyz")
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "degraded" and body["model_version"] == model_dir.name
        assert f"the active model {version} failed to load (ArtifactError" in body["reason"]
        assert f"still serving {model_dir.name}" in body["reason"]
        assert client.post("/v1/predict", json={"items": [SAMPLE_ITEM]}).status_code == 200
        registry.activate(model_dir.name)  # pointing back at the serving version heals it
        assert client.get("/readyz").json()["status"] == "ready"


def test_the_activate_command_refuses_a_version_that_cannot_predict(
    private_data_dir: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from service.cli import app
    from service.settings import get_settings

    monkeypatch.setenv("XINXI_DATA_DIR", str(private_data_dir))
    get_settings.cache_clear()
    registry = ModelRegistry(private_data_dir)
    version = malformed_version(private_data_dir, model_dir, "20990909-000000-bad5", short_thresholds)
    try:
        refused = CliRunner().invoke(app, ["models", "activate", version])
        assert refused.exit_code == 2
        assert f"model {version} cannot be loaded" in refused.output
        assert registry.active_id() == model_dir.name
        _repair(private_data_dir / "models" / version, model_dir)
        accepted = CliRunner().invoke(app, ["models", "activate", version])
        assert accepted.exit_code == 0, accepted.output
        assert registry.active_id() == version
    finally:
        get_settings.cache_clear()


def test_a_failed_version_is_tried_again_when_the_pointer_is_rewritten(
    private_data_dir: Path, model_dir: Path, tmp_path: Path
) -> None:
    """`xinxi models activate` in another process is an explicit activation too."""
    registry = ModelRegistry(private_data_dir)
    version = malformed_version(private_data_dir, model_dir, "20991010-000000-bad6", short_thresholds)
    with TestClient(create_app(make_settings(private_data_dir, tmp_path, model_poll_seconds=0))) as client:
        active = started(client).app.state.active_model  # type: ignore[attr-defined]
        registry.activate(version)
        assert active.refresh() is False
        _repair(private_data_dir / "models" / version, model_dir)
        assert active.refresh() is False  # the same pointer: not tried on every poll
        registry.activate(version)
        assert active.refresh() is True
        assert client.post("/v1/predict", json={"items": [SAMPLE_ITEM]}).json()["model_version"] == version
