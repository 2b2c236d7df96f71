"""The HTTP API over a real trained model: results, every bad input of issue 4, errors and ids."""

from __future__ import annotations

import json
import logging
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from model import Predictor
from model.labels import KINDS, TOPICS
from service.app import create_app
from tests.service.conftest import SAMPLE_ITEM, make_settings

ERROR_KEYS = {"code", "message_zh", "message_en", "request_id"}


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    error = body["error"]
    assert ERROR_KEYS <= set(error)
    assert error["code"] == code
    assert error["request_id"] == response.headers["X-Request-ID"]
    assert error["message_zh"] and error["message_en"]
    assert "Traceback" not in response.text and 'File "' not in response.text
    return error


def test_predict_returns_the_result_shape_of_xinxi_predict(client: TestClient, predictor: Predictor) -> None:
    response = client.post("/v1/predict", json={"items": [SAMPLE_ITEM]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == predictor.version
    [result] = body["results"]
    assert result["id"] == "sample-1"
    assert [t["label"] for t in result["topics"]] == predictor.topic_labels
    for topic in result["topics"]:
        assert set(topic) == {"label", "name", "probability", "selected", "terms"}
        assert 0 <= topic["probability"] <= 1
    assert result["kind"]["label"] in {k.label for k in KINDS}
    assert 0 <= result["quality_score"] <= 100
    assert result["grade"] in {"动态类", "综合类"}
    assert isinstance(result["suggestions"], list)


def test_api_and_predictor_give_identical_numbers(client: TestClient, predictor: Predictor, corpus) -> None:
    items = [{"id": item.id, "title": item.title, "text": item.text} for item in corpus[:24]]
    expected = [p.to_dict() for p in predictor.predict(items)]
    one_request = client.post("/v1/predict", json={"items": items}).json()["results"]
    # Concurrent single-item requests end up in shared batches; rows must not influence each other.
    with ThreadPoolExecutor(max_workers=12) as pool:
        singles = list(pool.map(lambda item: client.post("/v1/predict", json={"items": [item]}), items))
    assert one_request == expected
    assert [r.json()["results"][0] for r in singles] == expected


def test_numeric_ids_are_echoed_as_strings(client: TestClient) -> None:
    response = client.post(
        "/v1/predict", json={"items": [{**SAMPLE_ITEM, "id": 42}, {"text": "5月3日，某镇召开会议。"}]}
    )
    assert [r["id"] for r in response.json()["results"]] == ["42", None]


@pytest.mark.parametrize("bad_id", [True, False, 1.0, 1.5, ["a"], {"a": 1}])
def test_ids_are_strings_or_integers_strictly(client: TestClient, bad_id) -> None:
    response = client.post("/v1/predict", json={"items": [{**SAMPLE_ITEM, "id": bad_id}]})
    error = assert_error(response, 422, "validation_error")
    assert "id" in error["message_en"]


@pytest.mark.parametrize(
    ("body", "status", "code", "message"),
    [
        ({}, 422, "validation_error", "items"),
        ({"items": []}, 422, "validation_error", "at least 1"),
        ({"items": "文本"}, 422, "validation_error", "list"),
        ({"items": [{"title": "只有标题"}]}, 422, "validation_error", "text"),
        ({"items": [{"text": None}]}, 422, "validation_error", "valid string"),
        ({"items": [{"text": 12345}]}, 422, "validation_error", "valid string"),
        ({"items": [{"text": ["a"]}]}, 422, "validation_error", "valid string"),
        ({"items": [{"text": ""}]}, 422, "validation_error", "at least 1"),
        ({"items": [{"text": "正文", "title": 7}]}, 422, "validation_error", "title"),
        ({"items": [{"text": "   \n\t "}]}, 422, "invalid_item", "item 1: text is empty"),
        ({"items": [{"text": "\u0000\u0001\u200b\ufeff"}]}, 422, "invalid_item", "item 1"),
        ({"items": [{"text": "正文"}] * 101}, 422, "too_many_items", "101 items"),
        ({"items": [{"text": "字" * 100_001}]}, 413, "text_too_long", "100001 characters"),
        ([{"text": "正文"}], 422, "validation_error", "schema"),
    ],
)
def test_bad_input_gets_a_clear_4xx(client: TestClient, body, status: int, code: str, message: str) -> None:
    error = assert_error(client.post("/v1/predict", json=body), status, code)
    assert message in error["message_en"]


def test_a_bad_item_names_its_position(client: TestClient) -> None:
    body = {"items": [SAMPLE_ITEM, {"id": "b", "text": "\u0007\u0008"}]}
    error = assert_error(client.post("/v1/predict", json=body), 422, "invalid_item")
    assert re.search(r"item 2 \(id b\)", error["message_en"])


@pytest.mark.parametrize(
    "raw",
    [b"{", b'{"items": [{"text": "abc"}', b"not json", b'{"items": [{"text": "\\ud800"}]}', b"\xff\xfe"],
)
def test_malformed_json_or_encoding_is_refused(client: TestClient, raw: bytes) -> None:
    response = client.post("/v1/predict", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code in {400, 422}
    assert_error(
        response, response.status_code, "malformed_json" if response.status_code == 400 else "validation_error"
    )


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ('{"items": [{"text": "正文"}]}'.encode("gb18030"), "not UTF-8"),
        (b'{"items": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
        (b'{"items": [{"id": ' + b"9" * 5_000 + b', "text": "abc"}]}', "too many digits"),
    ],
)
def test_bodies_json_cannot_decode_are_malformed_json(client: TestClient, raw: bytes, why: str) -> None:
    response = client.post("/v1/predict", content=raw, headers={"Content-Type": "application/json"})
    error = assert_error(response, 400, "malformed_json")
    assert why in error["message_en"]


def test_a_10_mb_body_gets_413_before_it_is_parsed(client: TestClient) -> None:
    body = json.dumps({"items": [{"text": "长" * 3_500_000}]}).encode()
    assert len(body) > 10_000_000
    error = assert_error(
        client.post("/v1/predict", content=body, headers={"Content-Type": "application/json"}), 413, "body_too_large"
    )
    assert "limit" in error["message_en"]


def test_a_streamed_body_without_length_is_cut_at_the_limit(client: TestClient) -> None:
    def chunks():
        yield b'{"items": [{"text": "'
        for _ in range(50):
            yield b"a" * 100_000
        yield b'"}]}'

    response = client.post("/v1/predict", content=chunks(), headers={"Content-Type": "application/json"})
    assert_error(response, 413, "body_too_large")


def test_long_text_is_truncated_with_a_warning(client: TestClient) -> None:
    response = client.post("/v1/predict", json={"items": [{"text": SAMPLE_ITEM["text"] * 200}]})
    assert response.status_code == 200
    [warning] = response.json()["results"][0]["warnings"]
    assert "20000" in warning


def test_control_characters_and_emoji_are_scored(client: TestClient) -> None:
    text = "\u0007\u001b[31m 🚒🔥 3月5日凌晨，某镇一民房发生火灾，消防救援大队迅速处置，无人员伤亡。\u200b\ufeff😀"
    response = client.post("/v1/predict", json={"items": [{"id": "🚒", "title": "火灾😀\u0000", "text": text}]})
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["id"] == "🚒"


def test_text_without_chinese_is_scored_with_low_confidence(client: TestClient) -> None:
    response = client.post("/v1/predict", json={"items": [{"text": "Quarterly report 2024, 12% growth."}]})
    assert response.status_code == 200
    assert response.json()["results"][0]["confidence"] == "low"


def test_100_items_are_accepted(client: TestClient) -> None:
    response = client.post("/v1/predict", json={"items": [SAMPLE_ITEM] * 100})
    assert response.status_code == 200
    assert len(response.json()["results"]) == 100


def test_the_service_keeps_serving_after_bad_input(client: TestClient) -> None:
    for raw in (b"{", b"[]", b'{"items": null}'):
        client.post("/v1/predict", content=raw, headers={"Content-Type": "application/json"})
    assert client.post("/v1/predict", json={"items": [SAMPLE_ITEM]}).status_code == 200


def test_unknown_paths_and_methods(client: TestClient) -> None:
    assert_error(client.get("/v1/nothing"), 404, "not_found")
    assert_error(client.get("/v1/predict"), 405, "method_not_allowed")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("OPTIONS", "/v1/models/active", "GET, HEAD, PUT"),
        ("POST", "/v1/models/active", "GET, HEAD, PUT"),
        ("GET", "/v1/predict", "POST"),
        ("DELETE", "/v1/batch/abc", "GET, HEAD"),
    ],
)
def test_a_wrong_method_is_told_every_method_of_the_path(
    client: TestClient, method: str, path: str, allowed: str
) -> None:
    response = client.request(method, path)
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["Allow"] == allowed


def test_every_response_carries_a_request_id(client: TestClient) -> None:
    generated = client.get("/healthz").headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert client.get("/healthz", headers={"X-Request-ID": "editor-42.a"}).headers["X-Request-ID"] == "editor-42.a"
    unsafe = client.get("/healthz", headers={"X-Request-ID": "x" * 65}).headers["X-Request-ID"]
    assert unsafe != "x" * 65 and re.fullmatch(r"[0-9a-f]{32}", unsafe)
    error = assert_error(
        client.post("/v1/predict", json={}, headers={"X-Request-ID": "req-7"}), 422, "validation_error"
    )
    assert error["request_id"] == "req-7"


def test_an_unexpected_failure_is_a_logged_500_without_details(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    predictor = client.app.state.active_model.predictor  # type: ignore[attr-defined]

    def broken(items):
        raise RuntimeError("secret /srv/internal/path")

    monkeypatch.setattr(predictor, "predict", broken)
    with caplog.at_level(logging.ERROR, logger="xinxi.service"):
        response = client.post("/v1/predict", json={"items": [SAMPLE_ITEM]}, headers={"X-Request-ID": "boom-1"})
    error = assert_error(response, 500, "internal_error")
    assert "secret" not in response.text
    assert error["request_id"] == "boom-1"
    assert any("boom-1" in r.getMessage() and r.exc_info for r in caplog.records)
    monkeypatch.undo()
    assert client.post("/v1/predict", json={"items": [SAMPLE_ITEM]}).status_code == 200


def test_health_readiness_taxonomy_and_active_model(client: TestClient, model_dir: Path) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "model_version": model_dir.name, "model_state": "ready", "store": "ok",
                            "worker": os.getpid()}

    taxonomy = client.get("/v1/taxonomy").json()
    assert [(t["label"], t["name"], t["definition"]) for t in taxonomy["topics"]] == [
        (t.label, t.name, t.definition) for t in TOPICS
    ]
    assert [k["name"] for k in taxonomy["kinds"]] == ["动态类", "综合类"]
    assert taxonomy["multi_label"] is True

    active = client.get("/v1/models/active").json()
    assert active["version"] == model_dir.name
    assert active["created_at"]
    assert "micro_f1" in active["metrics"]["cross_validation"]["topics"]
    listed = client.get("/v1/models").json()
    assert [m["version"] for m in listed if m["active"]] == [model_dir.name]


def test_metrics_count_requests_latencies_and_labels(client: TestClient) -> None:
    client.post("/v1/predict", json={"items": [SAMPLE_ITEM]})
    text = client.get("/metrics").text
    assert re.search(r'xinxi_http_requests_total\{method="POST",route="/v1/predict",status="200"\} [1-9]', text)
    assert 'xinxi_http_request_duration_seconds_bucket{le="0.1",method="POST",route="/v1/predict"}' in text
    assert re.search(r'xinxi_predicted_topics_total\{label="investment"\} [1-9]', text)
    assert re.search(r'xinxi_predicted_kinds_total\{label="(news|analysis)"\} [1-9]', text)
    assert "xinxi_model_loaded 1.0" in text
    # Unmatched paths are one series, not one per URL someone tried.
    client.get("/no/such/path/123")
    assert 'route="unmatched"' in client.get("/metrics").text
    assert "/no/such/path/123" not in client.get("/metrics").text


def test_openapi_has_chinese_examples_and_docs(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert "/v1/predict" in schema["paths"]
    assert "青溪县" in json.dumps(schema, ensure_ascii=False)
    assert client.get("/docs").status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "statuses"),
    [
        ("post", "/v1/predict", {400, 401, 413, 422, 503}),
        ("put", "/v1/models/active", {400, 401, 404, 409, 413, 422}),
        ("get", "/v1/models/active", {503}),
        ("post", "/v1/batch", {400, 401, 413, 422}),
        ("get", "/v1/batch/{job_id}", {401, 404}),
        ("get", "/v1/batch/{job_id}/result", {401, 404, 409}),
        ("get", "/v1/batch/{job_id}/report", {401, 404, 409}),
    ],
)
def test_openapi_lists_the_errors_each_route_gives_with_the_error_body(
    client: TestClient, method: str, path: str, statuses: set[int]
) -> None:
    schema = client.get("/openapi.json").json()
    responses = schema["paths"][path][method]["responses"]
    assert statuses <= {int(status) for status in responses if status.isdigit()}
    for status in statuses:
        body = responses[str(status)]["content"]["application/json"]["schema"]
        assert body == {"$ref": "#/components/schemas/ErrorOut"}, (status, body)
    error = schema["components"]["schemas"]["ErrorDetailOut"]
    assert {"code", "message_zh", "message_en", "request_id"} <= set(error["required"])


def test_cors_is_off_by_default(client: TestClient) -> None:
    response = client.get("/healthz", headers={"Origin": "https://example.org"})
    assert "access-control-allow-origin" not in response.headers


def test_cors_allows_configured_origins(private_data_dir: Path, tmp_path: Path) -> None:
    settings = make_settings(private_data_dir, tmp_path, cors_origins="https://oa.example.gov.cn")
    with TestClient(create_app(settings)) as client:
        allowed = client.get("/healthz", headers={"Origin": "https://oa.example.gov.cn"})
        other = client.get("/healthz", headers={"Origin": "https://evil.example"})
    assert allowed.headers["access-control-allow-origin"] == "https://oa.example.gov.cn"
    assert "access-control-allow-origin" not in other.headers


def test_editor_page_and_its_assets_are_local(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "政务信息" in page.text
    for asset in ("/static/app.js", "/static/app.css"):
        response = client.get(asset)
        assert response.status_code == 200
        assert not re.search(r"(src|href|url)\s*[=(]\s*[\"']?(https?:)?//", response.text), asset
    assert not re.search(r"(src|href)=\"(https?:)?//", page.text)
