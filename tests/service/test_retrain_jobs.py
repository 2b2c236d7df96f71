"""Retraining through the API and the command line: the gate, one job at a time, and kill -9 at any stage.

Editors' items are recorded in the real store (SQLite, through ``POST /v1/items``
or ``Store.record_items``), which retraining reads with ``training_items``.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from model import ModelRegistry
from service.app import create_app
from service.retraining import RetrainJobs, RetrainScheduler
from service.store import Store
from tests.conftest import small_items, write_jsonl
from tests.service.conftest import SAMPLE_ITEM, make_settings, started
from tests.service.test_api import assert_error
from training import HOLDOUT_DATA, PAUSE_HOOK, load_items
from training.data import Item

KEY = "k3y-for-retrain-tests-41d2"
AUTH = {"Authorization": f"Bearer {KEY}"}
LOOSE = {"retrain_max_macro_f1_drop": 1.0, "retrain_max_kind_accuracy_drop": 1.0}
ROTATE = {"industry": "investment", "investment": "rural", "rural": "hot_issue", "hot_issue": "emergency",
          "emergency": "industry"}


def recordable(items: list[Item]) -> list[dict[str, Any]]:
    """Items as an editor records them (``POST /v1/items``)."""
    return [{"title": item.title, "text": item.text, "topics": list(item.topics or []), "kind": item.kind,
             "unit": "青溪县", "adopted_level": "city"} for item in items]


def record(store: Store, items: list[Item]) -> None:
    results = store.record_items(recordable(items), origin="import")
    assert {r["status"] for r in results} == {"added"}, results


@pytest.fixture(scope="module")
def retrain_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 60-item corpus, the same with every topic rotated (a model that must be refused), and 31 held-out items."""
    folder = tmp_path_factory.mktemp("retrain-data")
    corpus = small_items()[::5]
    rotated = [Item(**{**item.__dict__, "topics": [ROTATE[t] for t in item.topics or []]}) for item in corpus]
    holdout = load_items(HOLDOUT_DATA, require_labels=True)[0][::6]
    return {
        "corpus": write_jsonl(corpus, folder / "corpus.jsonl"),
        "rotated": write_jsonl(rotated, folder / "rotated.jsonl"),
        "holdout": write_jsonl(holdout, folder / "holdout.jsonl"),
    }


def retrain_settings(data_dir: Path, tmp_path: Path, files: dict[str, Path], corpus: str = "corpus", **extra: Any):
    return make_settings(
        data_dir, tmp_path, api_keys=[KEY], retrain_data=[files[corpus]], retrain_holdout=files["holdout"],
        retrain_folds=2, **extra,
    )


@pytest.fixture
def open_app(private_data_dir: Path, tmp_path: Path, retrain_data: dict[str, Path]) -> Iterator[Any]:
    """``open_app(**settings)``: a started app over a private data directory, closed after the test."""
    with ExitStack() as stack:

        def opened(**extra: Any) -> TestClient:
            settings = retrain_settings(private_data_dir, tmp_path, retrain_data, **extra)
            client = TestClient(create_app(settings), raise_server_exceptions=False)
            return started(stack.enter_context(client))

        yield opened


def wait_for(client: TestClient, job_id: str, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}", headers=AUTH).json()
        if job["state"] in ("done", "failed"):
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s")


def registry_state(root: Path) -> dict[str, Any]:
    models = root / "models"
    return {
        "active": (models / "ACTIVE").read_text(),
        "audit": (models / "AUDIT.jsonl").read_bytes() if (models / "AUDIT.jsonl").exists() else b"",
        "entries": sorted(p.name for p in models.iterdir()),
        "versions": [m["version"] for m in ModelRegistry(root).versions()],
    }


def test_a_retrain_over_the_api_runs_one_at_a_time_and_promotes_with_what_it_saw(
    open_app: Any, private_data_dir: Path, model_dir: Path
) -> None:
    client = open_app(**LOOSE)
    recorded = client.post("/v1/items", headers=AUTH, json=recordable(small_items()[1::3][:6]))
    assert recorded.status_code == 200 and recorded.json()["added"] == 6, recorded.text
    store = client.app.state.store  # type: ignore[attr-defined]
    assert_error(client.post("/v1/retrain"), 401, "unauthorized")
    response = client.post("/v1/retrain", headers=AUTH, json={"reason": "三月采用信息"})
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["state"] in ("queued", "running") and job["trigger"] == "api"
    busy = assert_error(client.post("/v1/retrain", headers=AUTH), 409, "retrain_running")
    assert job["id"] in busy["message_en"] and "wait for it to finish" in busy["message_en"]
    done = wait_for(client, job["id"])
    assert done["state"] == "done" and done["outcome"] == "promoted", done
    version = done["version"]
    fingerprint = "api-key:" + hashlib.sha256(KEY.encode()).hexdigest()[:12]
    assert done["who"] == fingerprint
    sets = {s["set"]: s for s in done["report"]["sets"]}
    assert sets["holdout"]["items"] == 31 and sets["new stored items"]["items"] == 6
    assert set(sets["holdout"]["per_label"]["industry"]) == {"active", "candidate", "change", "support"}
    # Served at once by this worker, and recorded.
    predicted = client.post("/v1/predict", json={"items": [SAMPLE_ITEM]}).json()
    assert predicted["model_version"] == version
    entry = client.get("/v1/models/audit").json()[-1]
    assert (entry["version"], entry["previous"], entry["who"], entry["action"], entry["why"]) == (
        version, model_dir.name, fingerprint, "retrain", "三月采用信息")
    shown = client.get(f"/v1/models/{version}").json()
    assert shown["training_data"]["store"]["up_to_change"] == store.last_change_id() > 0
    assert shown["evaluation"]["against"] == model_dir.name and shown["evaluation"]["passed"] is True
    listed = {m["version"]: m for m in client.get("/v1/models").json()}
    assert listed[version]["store_up_to_change"] == store.last_change_id() and listed[version]["active"] is True
    assert not (private_data_dir / "retrain" / job["id"] / "staging").exists()


def test_a_worse_candidate_is_kept_with_the_reasons_and_force_needs_a_reason(
    open_app: Any, private_data_dir: Path, model_dir: Path
) -> None:
    client = open_app(corpus="rotated")
    before = registry_state(private_data_dir)
    assert_error(client.post("/v1/retrain", headers=AUTH, json={"force": True}), 422, "reason_required")
    job = wait_for(client, client.post("/v1/retrain", headers=AUTH).json()["id"])
    assert job["state"] == "done" and job["outcome"] == "kept" and job["version"] is None
    reasons = job["report"]["reasons"]
    assert reasons[0].startswith("holdout: macro F1") and "labels that fell: industry" in reasons[0]
    assert registry_state(private_data_dir) == before
    assert client.post("/v1/predict", json={"items": [SAMPLE_ITEM]}).json()["model_version"] == model_dir.name

    forced = wait_for(client, client.post("/v1/retrain", headers=AUTH,
                                          json={"force": True, "reason": "测试强制上线"}).json()["id"])
    assert forced["outcome"] == "forced"
    entry = ModelRegistry(private_data_dir).audit_log()[-1]
    assert (entry["version"], entry["action"], entry["why"]) == (forced["version"], "force", "测试强制上线")
    manifest = client.get(f"/v1/models/{forced['version']}").json()
    assert manifest["evaluation"]["forced"] is True and manifest["evaluation"]["reasons"] == reasons


@pytest.mark.parametrize("stage", ["training: cross-validation fold 2", "evaluating", "saved"])
def test_kill_9_of_the_retrain_process_changes_nothing(
    open_app: Any, private_data_dir: Path, model_dir: Path, tmp_path: Path, stage: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = open_app(**LOOSE)  # the candidate passes: every stage up to the commit is reached
    monkeypatch.setenv(PAUSE_HOOK, stage)
    database = tmp_path / "xinxi.db"
    store = client.app.state.store  # type: ignore[attr-defined]
    record(store, small_items()[1::3][:4])
    rows_before = (store.training_items(), store.list_items(limit=100), store.last_change_id())
    before = registry_state(private_data_dir)
    job = client.post("/v1/retrain", headers=AUTH).json()
    folder = private_data_dir / "retrain" / job["id"]
    deadline = time.monotonic() + 120
    while not (folder / "paused").exists():
        state = json.loads((folder / "job.json").read_text())["state"]
        assert time.monotonic() < deadline and state not in ("done", "failed"), "the retrain never reached the stage"
        time.sleep(0.2)
    pid = json.loads((folder / "job.json").read_text())["pid"]
    os.kill(pid, signal.SIGKILL)
    failed = wait_for(client, job["id"], timeout=30)
    assert failed["state"] == "failed" and "killed by signal 9" in failed["error"]
    assert "the active model and the registry are unchanged" in failed["error"]
    assert registry_state(private_data_dir) == before
    assert not (folder / "staging").exists()
    assert client.post("/v1/predict", json={"items": [SAMPLE_ITEM]}).json()["model_version"] == model_dir.name
    assert (store.training_items(), store.list_items(limit=100), store.last_change_id()) == rows_before
    with sqlite3.connect(database) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    # The lock went with the job: another retrain may start.
    assert RetrainJobs(private_data_dir / "retrain").lock().acquire()


def test_kill_9_of_xinxi_retrain_then_the_next_retrain_works(
    private_data_dir: Path, tmp_path: Path, retrain_data: dict[str, Path], model_dir: Path
) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("XINXI_")},
        "XINXI_DATA_DIR": str(private_data_dir), "XINXI_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "XINXI_RETRAIN_DATA": str(retrain_data["corpus"]), "XINXI_RETRAIN_HOLDOUT": str(retrain_data["holdout"]),
        "XINXI_RETRAIN_FOLDS": "2", "XINXI_RETRAIN_MAX_MACRO_F1_DROP": "1", "XINXI_RETRAIN_MAX_KIND_ACCURACY_DROP": "1",
    }
    command = [sys.executable, "-m", "service.cli", "retrain"]
    store = Store(env["XINXI_DATABASE_URL"])
    store.migrate()
    record(store, small_items()[1::3][:3])
    before = registry_state(private_data_dir)
    cli = subprocess.Popen(command, env={**env, PAUSE_HOOK: "saving"}, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    jobs = RetrainJobs(private_data_dir / "retrain")
    deadline = time.monotonic() + 120
    while not any((jobs.folder(j["id"]) / "paused").exists() for j in jobs.all()):
        assert time.monotonic() < deadline and cli.poll() is None, "the retrain never reached the stage"
        time.sleep(0.2)
    child = jobs.all()[0]["pid"]
    cli.kill()  # kill -9 of the command and of its training process
    os.kill(child, signal.SIGKILL)
    cli.wait(10)
    assert registry_state(private_data_dir) == before
    done = subprocess.run([*command, "--reason", "after the crash"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    first, second = sorted(jobs.all(), key=lambda j: j["created_at"])
    assert first["state"] == "failed" and first["error"].startswith("interrupted")
    assert second["outcome"] == "promoted" and second["who"].startswith("os-user:")
    assert ModelRegistry(private_data_dir).active_id() == second["version"] != model_dir.name
    assert f"{second['version']} is now active" in done.stderr.replace("\n", "")
    manifest = ModelRegistry(private_data_dir).versions()[-1]
    assert manifest["training_data"]["store"] == {
        "up_to_change": store.last_change_id(), "up_to_time": manifest["training_data"]["store"]["up_to_time"],
        "items": 3, "replaced_corpus_items": 0}
    assert manifest["training_data"]["store"]["up_to_time"] is not None
    store.close()


def test_only_one_worker_schedules_periodic_retrains(private_data_dir: Path, tmp_path: Path) -> None:
    from service.retraining import Retrainer

    settings = make_settings(private_data_dir, tmp_path, retrain_interval_hours=1.0)
    jobs = RetrainJobs(private_data_dir / "retrain")
    recent = jobs.create(trigger="cli", who="os-user:test", reason=None, force=False)
    jobs.update(recent, state="done", outcome="kept")
    store = Store(settings.resolved_database_url)  # never read: no retrain is due
    workers = [RetrainScheduler(Retrainer(settings, store, ModelRegistry(private_data_dir)), 1.0,
                                check_seconds=0.05) for _ in range(2)]
    for worker in workers:
        worker.start()
    try:
        time.sleep(0.5)
        assert sorted(w.leading for w in workers) == [False, True]
        assert not workers[0].due()  # the last job is minutes old, the interval an hour
        leader = next(w for w in workers if w.leading)
        leader.stop()
        other = next(w for w in workers if w is not leader)
        deadline = time.monotonic() + 5
        while not other.leading:
            assert time.monotonic() < deadline, "nobody took over the schedule"
            time.sleep(0.05)
    finally:
        for worker in workers:
            worker.stop()
    jobs.update(recent, created_at="2020-01-01T00:00:00+00:00")
    assert workers[0].due()  # stopped first: a due scheduler would start a real retrain
