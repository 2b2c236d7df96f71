"""Recording, listing and correcting items over HTTP, the review queue, and the store being down."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from model import Predictor
from model.text import content_hash
from model.uncertainty import prediction_priority
from service.app import create_app
from tests.service.conftest import SAMPLE_ITEM, make_settings, started

KEY = "store-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
PAGE = {"X-Xinxi-Source": "page"}
UNREACHABLE = "postgresql+psycopg://nobody@127.0.0.1:1/none"


@pytest.fixture
def keyed(private_data_dir: Path, tmp_path: Path) -> Iterator[TestClient]:
    settings = make_settings(private_data_dir, tmp_path, api_keys=KEY, model_poll_seconds=0)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield started(client)


@pytest.fixture(scope="module")
def keyed_shared(model_dir: Path, data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One keyed app for the tests that store nothing (refused requests, the OpenAPI schema)."""
    settings = make_settings(data_dir, tmp_path_factory.mktemp("keyed"), api_keys=KEY, model_poll_seconds=0)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield started(client)


def error_of(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code, error
    return error


def test_record_one_or_many_then_list_with_filters(keyed: TestClient) -> None:
    one = keyed.post("/v1/items", json={**SAMPLE_ITEM, "topics": ["招商引资"], "kind": "综合类",
                                         "adopted_level": "市级", "unit": "商务局", "recorded_by": "王"},
                     headers=AUTH)
    assert one.status_code == 200, one.text
    assert one.json()["added"] == 1 and one.json()["results"][0]["status"] == "added"
    many = keyed.post("/v1/items", headers=AUTH, json=[
        {"text": SAMPLE_ITEM["text"] + "  ", "title": SAMPLE_ITEM["title"], "unit": "商务局"},  # same content
        {"text": ""},
        {"text": "某镇开展防汛演练", "topics": ["sports"]},
        {"text": "某镇开展防汛演练", "adopted_level": "随便"},
        {"text": "某镇开展防汛演练", "kind": "news", "topics": ["突发事件"], "adopted_level": "none"},
    ])
    body = many.json()
    assert [r["status"] for r in body["results"]] == ["unchanged", "rejected", "rejected", "rejected", "added"]
    assert body["results"][1]["reason"] == "text is empty"
    assert "unknown topic 'sports'" in body["results"][2]["reason"]
    assert "'随便' is not understood" in body["results"][3]["reason"]
    assert (body["added"], body["unchanged"], body["rejected"]) == (1, 1, 3)

    listed = keyed.get("/v1/items", headers=AUTH).json()
    assert listed["total"] == 2 and listed["items"][0]["text"] == "某镇开展防汛演练"
    adopted = keyed.get("/v1/items", params={"adopted": "true"}, headers=AUTH).json()
    assert [i["adopted_level"] for i in adopted["items"]] == ["city"]
    assert adopted["items"][0]["topics"] == ["investment"] and adopted["items"][0]["recorded_by"] == "王"
    assert keyed.get("/v1/items", params={"topic": "emergency"}, headers=AUTH).json()["total"] == 1
    assert keyed.get("/v1/items", params={"kind": "analysis", "unit": "商务局"}, headers=AUTH).json()["total"] == 1
    assert keyed.get("/v1/items", params={"since": "2999-01-01T00:00:00"}, headers=AUTH).json()["total"] == 0
    page = keyed.get("/v1/items", params={"limit": 1, "offset": 1}, headers=AUTH).json()
    assert page["total"] == 2 and len(page["items"]) == 1 and page["items"][0]["unit"] == "商务局"
    error_of(keyed.get("/v1/items", params={"limit": 0}, headers=AUTH), 422, "validation_error")
    error_of(keyed.post("/v1/items", json=[{"text": "x"}] * 1001, headers=AUTH), 422, "validation_error")


def test_a_correction_keeps_the_active_models_prediction(keyed: TestClient, model_dir: Path) -> None:
    added = keyed.post("/v1/items", json={"text": "某县遭遇暴雨，转移群众300余人", "title": "暴雨"},
                       headers={**AUTH, **PAGE}).json()["results"][0]
    corrected = keyed.post(f"/v1/items/{added['id']}/corrections",
                           json={"topics": ["emergency"], "kind": "news", "corrected_by": "李"}, headers=AUTH)
    assert corrected.status_code == 200, corrected.text
    body = corrected.json()
    assert body["topics"] == ["emergency"] and body["model_version"] == model_dir.name
    assert set(body["probabilities"]) == {"industry", "investment", "rural", "hot_issue", "emergency", "analysis"}
    assert body["predicted_kind"] in {"news", "analysis"}
    given = keyed.post(f"/v1/items/{added['id']}/corrections", headers=AUTH, json={
        "topics": ["emergency", "hot_issue"], "kind": "news", "predicted_topics": ["rural"],
        "predicted_kind": "analysis", "probabilities": {"rural": 0.7}, "model_version": "page-v1"})
    assert given.json()["model_version"] == "page-v1" and given.json()["predicted_topics"] == ["rural"]
    detail = keyed.get(f"/v1/items/{added['id']}", headers=AUTH).json()
    assert detail["origin"] == "page" and detail["topics"] == ["emergency", "hot_issue"]
    assert [c["action"] for c in detail["history"]] == ["insert", "correction", "correction"]
    assert len(detail["corrections"]) == 2
    error_of(keyed.post(f"/v1/items/{added['id']}/corrections", json={"topics": ["x"], "kind": "news"},
                        headers=AUTH), 422, "invalid_correction")
    error_of(keyed.post("/v1/items/999/corrections", json={"topics": [], "kind": "news"}, headers=AUTH),
             404, "not_found")
    error_of(keyed.get("/v1/items/999", headers=AUTH), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/v1/items", {"text": "x"}),
        ("get", "/v1/items", None),
        ("get", "/v1/items/1", None),
        ("post", "/v1/items/1/corrections", {"topics": [], "kind": "news"}),
        ("get", "/v1/review", None),
    ],
)
def test_every_store_route_needs_the_key(keyed_shared: TestClient, method: str, path: str, body: Any) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        error_of(keyed_shared.request(method, path, json=body, headers=headers), 401, "unauthorized")
    assert keyed_shared.get("/v1/items", headers=AUTH).json()["total"] == 0  # nothing was recorded


def test_openapi_lists_the_store_routes_errors(keyed_shared: TestClient) -> None:
    paths = keyed_shared.get("/openapi.json").json()["paths"]
    for path, method, statuses in [("/v1/items", "post", {400, 401, 413, 422, 503}),
                                   ("/v1/items", "get", {401, 422, 503}),
                                   ("/v1/items/{item_id}/corrections", "post", {401, 404, 422, 503}),
                                   ("/v1/review", "get", {401, 503})]:
        assert statuses <= {int(s) for s in paths[path][method]["responses"] if s.isdigit()}, (path, method)


def test_the_review_queue_ranks_unlabelled_and_page_scored_items(keyed: TestClient, predictor: Predictor) -> None:
    texts = ["县里召开防汛工作会议，部署安全度汛", "某镇村集体经济收入增长，农民增收", "全县招商引资签约项目12个"]
    keyed.post("/v1/items", json=[{"text": t} for t in texts[:2]] + [
        {"text": "已标注的条目不进队列", "topics": [], "kind": "news"}], headers=AUTH)
    for text in (texts[2], texts[0]):  # texts[0] is already an item: listed once
        assert keyed.post("/v1/predict", json={"items": [{"text": text}]}, headers=PAGE).status_code == 200
    keyed.post("/v1/predict", json={"items": [{"text": "程序调用的预测不进队列"}]})
    queue = keyed.get("/v1/review", headers=AUTH)
    assert queue.status_code == 200, queue.text
    entries = queue.json()["items"]
    assert sorted(e["text"] for e in entries) == sorted(texts)
    assert {e["text"]: e["source"] for e in entries}[texts[2]] == "prediction"
    assert {e["text"]: e["source"] for e in entries}[texts[0]] == "item"
    expected = prediction_priority(predictor.predict([{"title": "", "text": e["text"]} for e in entries]),
                                   predictor.thresholds)
    assert np.allclose([e["priority"] for e in entries], expected, atol=1e-6)
    assert [e["priority"] for e in entries] == sorted((e["priority"] for e in entries), reverse=True)
    assert keyed.get("/v1/review", params={"limit": 1}, headers=AUTH).json()["items"] == entries[:1]
    # Labelling an item takes it off the queue.
    item = next(e for e in entries if e["source"] == "item")
    keyed.post(f"/v1/items/{item['item_id']}/corrections", json={"topics": ["rural"], "kind": "news"}, headers=AUTH)
    assert item["content_hash"] not in {e["content_hash"] for e in keyed.get("/v1/review", headers=AUTH).json()["items"]}
    # A scored item recorded with labels leaves the queue too.
    keyed.post("/v1/items", json={"text": texts[2], "topics": ["investment"], "kind": "news"}, headers=AUTH)
    left = {e["content_hash"] for e in keyed.get("/v1/review", headers=AUTH).json()["items"]}
    assert content_hash(None, texts[2]) not in left


def test_with_the_database_down_writes_answer_503_and_prediction_works(
    private_data_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(private_data_dir, tmp_path, api_keys=KEY, database_url=UNREACHABLE)
    with caplog.at_level(logging.ERROR, logger="xinxi.store"):
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            started(client)
            error = error_of(client.post("/v1/items", json={"text": "某条信息"}, headers=AUTH), 503,
                             "store_unavailable")
            assert "database is not reachable" in error["message_en"] and "数据库" in error["message_zh"]
            assert "nobody" not in error["message_en"]  # no URL in the answer; the log has it
            error_of(client.get("/v1/items", headers=AUTH), 503, "store_unavailable")
            error_of(client.post("/v1/items/1/corrections", json={"topics": [], "kind": "news"}, headers=AUTH),
                     503, "store_unavailable")
            error_of(client.get("/v1/review", headers=AUTH), 503, "store_unavailable")
            for headers in ({}, PAGE):
                assert client.post("/v1/predict", json={"items": [SAMPLE_ITEM]}, headers=headers).status_code == 200
            ready = error_of(client.get("/readyz"), 503, "not_ready")
            assert "store unreachable" in ready["message_en"]
    assert any("127.0.0.1:1" in r.getMessage() for r in caplog.records)


def test_the_store_comes_back_without_a_restart(private_data_dir: Path, tmp_path: Path) -> None:
    """A database that was down at start-up is migrated and used as soon as it answers."""
    blocker = tmp_path / "db"
    blocker.write_text("a file where the database's directory should be")
    settings = make_settings(private_data_dir, tmp_path, api_keys=KEY,
                             database_url=f"sqlite:///{blocker / 'xinxi.db'}")
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        started(client)
        error_of(client.post("/v1/items", json={"text": "某条信息"}, headers=AUTH), 503, "store_unavailable")
        blocker.unlink()
        blocker.mkdir()
        recorded = client.post("/v1/items", json={"text": "某条信息"}, headers=AUTH)
        assert recorded.status_code == 200 and recorded.json()["added"] == 1
