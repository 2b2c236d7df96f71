"""Security review, as tests: who may change state, what an upload may do, which model files load, what leaks.

The key test walks ``app.routes``: every route whose method changes state is
covered, including routes added after this file was written. A route may be
open without a key only if it is named in ``OPEN_WITHOUT_KEY`` with the reason.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import pickle
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import Mount

from model import ModelRegistry
from model.artifact import MANIFEST_FILE
from service.app import create_app
from service.settings import Settings
from tests.service.archives import archive_rows, write_csv
from tests.service.conftest import SAMPLE_ITEM, copy_version, make_settings, started
from training.data import Item

KEY = "k3y-for-the-security-tests-7f1d"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
OPEN_WITHOUT_KEY = {
    # Scoring stores nothing and changes nothing: the editor page works without a key by
    # default. XINXI_PREDICT_REQUIRES_KEY closes it too (tested below with an empty allow-list).
    ("POST", "/v1/predict"),
}
WRONG_AUTHORIZATIONS = [
    None,
    "Bearer wrong",
    f"Bearer {KEY}x",
    f"Bearer {KEY[:-1]}",
    f"Bearer {KEY.upper()}",
    f"Basic {base64.b64encode(f'user:{KEY}'.encode()).decode()}",
    KEY,
    f"Token {KEY}",
    "Bearer ",
    f"Bearer {KEY},{KEY}",
]
OTHER_VERSION = "20990101-000000-5ec0"


def all_routes(app: Any) -> list[Any]:
    """Every route of ``app``, those of included routers too (FastAPI nests them since 0.16x)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI: app.routes is flat
        return list(app.routes)
    return list(iter_route_contexts(app.routes))


def state_changing_routes(app: Any) -> list[tuple[str, str]]:
    """(method, path) of every route of ``app`` whose method is not GET, HEAD or OPTIONS."""
    found = []
    for route in all_routes(app):
        if isinstance(route.original_route if hasattr(route, "original_route") else route, Mount):
            # A mounted app is out of FastAPI's sight: only the static files may be mounted.
            assert route.path == "/static", f"{route.path} is mounted: its routes escape this test"
        for method in sorted(set(getattr(route, "methods", None) or ()) - SAFE_METHODS):
            found.append((method, route.path))
    return found


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` with a hash of its bytes (SQLite's shared-memory index aside: reads touch it)."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.name.endswith("-shm")
    }


@pytest.fixture
def upload_file(tmp_path: Path, corpus: list[Item]) -> Path:
    return write_csv(tmp_path / "upload.csv", archive_rows(corpus, 5))


def request_for(method: str, path: str, upload_file: Path) -> dict[str, Any]:
    """A request that would succeed with the key, where the route is known; for others, an empty JSON body."""
    url = re.sub(r"\{[^}]+\}", "0" * 32, path)
    known: dict[tuple[str, str], dict[str, Any]] = {
        ("PUT", "/v1/models/active"): {"json": {"version": OTHER_VERSION}},
        ("POST", "/v1/batch"): {"files": {"file": ("upload.csv", upload_file.read_bytes())}},
        ("POST", "/v1/predict"): {"json": {"items": [SAMPLE_ITEM]}},
    }
    return {"method": method, "url": url, **known.get((method, path), {"json": {}})}


@pytest.fixture
def keyed_data_dir(private_data_dir: Path, model_dir: Path) -> Path:
    copy_version(private_data_dir, model_dir, OTHER_VERSION)
    return private_data_dir


def client_for(data_dir: Path, **overrides: Any) -> TestClient:
    # The store lives in the data directory, so the snapshot sees every write.
    return TestClient(
        create_app(make_settings(data_dir, data_dir, database_url=f"sqlite:///{data_dir / 'xinxi.db'}", **overrides)),
        raise_server_exceptions=False,
    )


@pytest.mark.parametrize(
    ("settings", "open_routes"),
    [
        ({"api_keys": KEY}, OPEN_WITHOUT_KEY),
        ({"api_keys": KEY, "predict_requires_key": True}, set()),
    ],
    ids=["default", "predict-keyed"],
)
def test_only_the_key_changes_state_on_every_route(
    keyed_data_dir: Path, upload_file: Path, settings: dict[str, Any], open_routes: set[tuple[str, str]]
) -> None:
    with client_for(keyed_data_dir, **settings) as client:
        started(client)
        routes = state_changing_routes(client.app)
        assert ("PUT", "/v1/models/active") in routes and ("POST", "/v1/batch") in routes, routes
        before = snapshot(keyed_data_dir)
        for method, path in routes:
            if (method, path) in open_routes:
                continue
            for authorization in WRONG_AUTHORIZATIONS:
                headers = {} if authorization is None else {"Authorization": authorization}
                response = client.request(**request_for(method, path, upload_file), headers=headers)
                assert response.status_code == 401, f"{method} {path} with {authorization!r}: {response.text}"
                assert response.json()["error"]["code"] == "unauthorized"
                assert response.headers["www-authenticate"] == "Bearer"
                assert KEY not in response.text
            # The key is checked before the body is read: a broken body without a key is 401, not 400 or 422.
            broken = client.request(method, request_for(method, path, upload_file)["url"], content=b'{"items": [',
                                    headers={"Content-Type": "application/json"})
            assert broken.status_code == 401, f"{method} {path} read the body before the key: {broken.text}"
        assert snapshot(keyed_data_dir) == before, "a refused request changed the data directory"

        # The same requests with the key do change state: the snapshot would have seen it.
        auth = {"Authorization": f"Bearer {KEY}"}
        assert client.request(**request_for("PUT", "/v1/models/active", upload_file), headers=auth).status_code == 200
        assert client.request(**request_for("POST", "/v1/batch", upload_file), headers=auth).status_code == 202
        assert ModelRegistry(keyed_data_dir).active_id() == OTHER_VERSION
        assert snapshot(keyed_data_dir) != before


def test_every_keyed_route_is_marked_keyed_in_the_code(private_data_dir: Path) -> None:
    """Each state-changing route outside the allow-list carries ``require_api_key`` itself, checked before the body."""
    from service.security import KeyFirstRoute, require_api_key, require_predict_key

    app = create_app(make_settings(private_data_dir, private_data_dir))
    for route in all_routes(app):
        methods = set(getattr(route, "methods", None) or ()) - SAFE_METHODS
        if not methods:
            continue
        original = getattr(route, "original_route", route)
        assert isinstance(original, APIRoute) and isinstance(original, KeyFirstRoute), route.path
        checks = {d.dependency for d in route.dependencies}
        wanted = require_predict_key if any((m, route.path) in OPEN_WITHOUT_KEY for m in methods) else require_api_key
        assert wanted in checks, f"{sorted(methods)} {route.path} is not keyed"
    # ... and OpenAPI says so, so that /docs and generated clients send the key.
    schema = app.openapi()
    assert schema["components"]["securitySchemes"]["apiKey"] == {
        "type": "http", "scheme": "bearer", "description": "one of XINXI_API_KEYS: `Authorization: Bearer <key>`"
    }
    for method, path in state_changing_routes(app):
        if (method, path) not in OPEN_WITHOUT_KEY:
            assert schema["paths"][path][method.lower()]["security"] == [{"apiKey": []}], f"{method} {path}"


def test_with_no_key_configured_every_state_changing_route_is_closed(
    keyed_data_dir: Path, upload_file: Path
) -> None:
    with client_for(keyed_data_dir) as client:
        started(client)
        before = snapshot(keyed_data_dir)
        for method, path in state_changing_routes(client.app):
            if (method, path) in OPEN_WITHOUT_KEY:
                continue
            response = client.request(**request_for(method, path, upload_file), headers={"Authorization": "Bearer x"})
            assert response.status_code == 401 and "XINXI_API_KEYS" in response.json()["error"]["message_en"]
        assert snapshot(keyed_data_dir) == before


# --- uploads ---------------------------------------------------------------------------------------------

AUTH = {"Authorization": f"Bearer {KEY}"}
HOSTILE_NAMES = [
    "../../escape.csv",
    "../../../../../../tmp/escape.csv",
    "/etc/cron.d/escape.csv",
    "..\\..\\escape.csv",
    "C:\\Windows\\System32\\escape.csv",
    "\\\\server\\share\\escape.csv",
    "escape\x00.csv",
    "esc\r\nX-Injected: 1\r\n.csv",
    "....//....//escape.csv",
    "%2e%2e%2fescape.csv",
    "\u202eescape.csv",
    "e" * 5_000 + ".csv",
    ".csv",
    "job.json.csv",
]


def wait_done(client: TestClient, job_id: str) -> dict[str, Any]:
    import time

    deadline = time.monotonic() + 60
    while True:
        job = client.get(f"/v1/batch/{job_id}", headers=AUTH).json()
        if job["state"] in ("done", "failed"):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.05)


def test_upload_names_are_never_paths(private_data_dir: Path, upload_file: Path, tmp_path: Path) -> None:
    outside = tmp_path.parent
    before_outside = {p for p in outside.rglob("*") if "data" not in p.relative_to(outside).parts[1:2]}
    with client_for(private_data_dir, api_keys=KEY) as client:
        started(client)
        for name in HOSTILE_NAMES:
            response = client.post("/v1/batch", headers=AUTH, files={"file": (name, upload_file.read_bytes())})
            assert response.status_code in (202, 400, 422), f"{name!r}: {response.status_code} {response.text}"
            if response.status_code != 202:
                # 400: the multipart parser refuses a part header that long; 422: not a file it takes.
                assert response.json()["error"]["code"] in ("bad_request", "invalid_file", "validation_error")
                continue
            job = wait_done(client, response.json()["id"])
            assert job["state"] == "done", job
            shown = job["filename"]
            assert not re.search(r"[\\/\x00-\x1f\x7f\u202e]", shown) and len(shown) <= 120, repr(shown)
            directory = private_data_dir / "jobs" / job["id"]
            assert sorted(p.name for p in directory.iterdir()) == ["input.csv", "job.json", "output.csv", "report.html"]
            download = client.get(job["result_url"], headers=AUTH)
            assert download.status_code == 200
            disposition = download.headers["content-disposition"]
            assert "\r" not in disposition and "\n" not in disposition and "x-injected" not in download.headers
            assert disposition.count('"') == 2, disposition
    new_outside = {p for p in outside.rglob("*") if "data" not in p.relative_to(outside).parts[1:2]} - before_outside
    assert not [p for p in new_outside if "escape" in p.name]
    root = Path(__file__).resolve().parents[2]
    for where in (Path("/tmp/escape.csv"), Path("/etc/cron.d/escape.csv"), root / "escape.csv", Path.cwd() / "escape.csv"):
        assert not where.exists(), where
    assert not [p for p in private_data_dir.rglob("*") if "escape" in p.name]
    jobs = private_data_dir / "jobs"
    assert all(re.fullmatch(r"[0-9a-f]{32}", p.name) for p in jobs.iterdir())


XLSX_MAGIC = b"PK\x03\x04" + b"\x00" * 200
PARQUET_MAGIC = b"PAR1" + b"\x00" * 200 + b"PAR1"


DISGUISED = [
    ("items.csv", XLSX_MAGIC),
    ("items.csv", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4),
    ("items.csv", b"\x7fELF\x02\x01\x01" + b"\x00" * 500),
    ("items.csv", b"\x1f\x8b\x08\x00" + bytes(range(256))),
    ("items.jsonl", PARQUET_MAGIC),
    ("items.xlsx", "编号,正文\n1,招商引资\n".encode()),
    ("items.parquet", "编号,正文\n1,招商引资\n".encode()),
    ("items.csv", b""),
    ("items.exe", "编号,正文\n1,招商引资\n".encode()),
    ("items.csv.exe", "编号,正文\n1,招商引资\n".encode()),
    ("items", "编号,正文\n1,招商引资\n".encode()),
    ("items.html", b"<html><script>alert(1)</script></html>"),
]


def test_uploads_of_another_type_are_refused_by_name_and_by_contents(private_data_dir: Path) -> None:
    with client_for(private_data_dir, api_keys=KEY) as client:
        for name, contents in DISGUISED:
            response = client.post("/v1/batch", headers=AUTH, files={"file": (name, contents)})
            assert response.status_code == 422, f"{name} {contents[:8]!r}: {response.text}"
            assert response.json()["error"]["code"] == "invalid_file"
    assert not (private_data_dir / "jobs").exists() or not list((private_data_dir / "jobs").iterdir())


def test_an_upload_over_the_limit_is_refused_whether_or_not_it_says_its_length(
    private_data_dir: Path, upload_file: Path
) -> None:
    limit = 4096
    big = upload_file.read_bytes() * (limit // upload_file.stat().st_size + 2)
    with client_for(private_data_dir, api_keys=KEY, max_upload_bytes=limit) as client:
        declared = client.post("/v1/batch", headers=AUTH, files={"file": ("big.csv", big)})
        assert declared.status_code == 413 and declared.json()["error"]["code"] == "body_too_large"
        boundary = "xinxi-boundary"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.csv\"\r\n\r\n".encode()
                + big + f"\r\n--{boundary}--\r\n".encode())

        def chunks() -> Iterator[bytes]:
            for start in range(0, len(body), 1024):
                yield body[start : start + 1024]

        streamed = client.post("/v1/batch", headers={**AUTH, "Content-Type": f"multipart/form-data; boundary={boundary}"},
                               content=chunks())
        assert streamed.status_code == 413, streamed.text
    assert not (private_data_dir / "jobs").exists() or not list((private_data_dir / "jobs").iterdir())


# --- model files ------------------------------------------------------------------------------------------


class _RunsCode:
    """Unpickling this creates the marker file: proof that a model file ran code on load."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def plant(directory: Path, model_dir: Path, marker: Path, *, matching_checksums: bool) -> None:
    """A copy of the session model whose largest file is a pickle that runs code when loaded."""
    import shutil

    shutil.copytree(model_dir, directory)
    manifest = json.loads((directory / MANIFEST_FILE).read_text(encoding="utf-8"))
    name = max(manifest["files"], key=lambda file: manifest["files"][file]["bytes"])
    (directory / name).write_bytes(pickle.dumps(_RunsCode(marker)))
    if matching_checksums:
        data = (directory / name).read_bytes()
        manifest["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    manifest["version"] = directory.name
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest), encoding="utf-8")


def test_a_model_is_never_loaded_from_a_path_the_client_gives(
    private_data_dir: Path, model_dir: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "code-ran"
    plant(private_data_dir / "planted", model_dir, marker, matching_checksums=True)
    plant(tmp_path / "elsewhere", model_dir, marker, matching_checksums=True)
    versions = [
        "../planted", "..", ".", "models/../../planted", str(tmp_path / "elsewhere"), f"file://{tmp_path}/elsewhere",
        "..%2Fplanted", "%2e%2e%2fplanted", "..\\planted", "..%5cplanted", "%2e%2e/planted", "\u2025/planted",
        "planted\x00", "/planted", "~/planted", "..;/planted", "ACTIVE", "", " ", "x" * 201,
    ]
    with client_for(private_data_dir, api_keys=KEY) as client:
        started(client)
        for version in versions:
            response = client.put("/v1/models/active", json={"version": version}, headers=AUTH)
            assert response.status_code in (404, 422), f"{version!r}: {response.status_code} {response.text}"
            assert str(private_data_dir) not in response.text, "the error names the server's data directory"
        for path in ["/v1/models/..%2F..%2Fplanted/active", "/v1/models/%2e%2e/active", "/v1/models/../active"]:
            assert client.put(path, json={"version": "planted"}, headers=AUTH).status_code in (404, 405)
        assert client.get("/v1/models/active").json()["version"] == model_dir.name
    assert ModelRegistry(private_data_dir).active_id() == model_dir.name
    assert not marker.exists(), "a planted model file ran code"


def test_a_version_whose_checksum_fails_is_refused_before_its_file_is_read(
    private_data_dir: Path, model_dir: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "code-ran"
    plant(private_data_dir / "models" / "20990101-000000-bad5", model_dir, marker, matching_checksums=False)
    with client_for(private_data_dir, api_keys=KEY) as client:
        started(client)
        response = client.put("/v1/models/active", json={"version": "20990101-000000-bad5"}, headers=AUTH)
        assert response.status_code == 409, response.text
        assert response.json()["error"]["code"] == "model_rejected"
        assert "SHA-256" in response.json()["error"]["message_en"]
        assert client.post("/v1/predict", json={"items": [SAMPLE_ITEM]}).json()["model_version"] == model_dir.name
    assert ModelRegistry(private_data_dir).active_id() == model_dir.name
    assert not marker.exists()


# --- secrets ----------------------------------------------------------------------------------------------

PASSWORD = "pw-Secr3t-4f9a"


def test_no_secret_reaches_a_log_an_error_body_readyz_or_repr(
    private_data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    guess = "guessed-key-51c2"
    url = f"postgresql+psycopg://xinxi:{PASSWORD}@127.0.0.1:1/xinxi"  # nothing listens on port 1
    settings = Settings(data_dir=private_data_dir, database_url=url, api_keys=f"{KEY},other-{KEY}",
                        model_poll_seconds=0)
    secrets = [PASSWORD, KEY, guess]
    for text in (repr(settings), str(settings), repr(settings.api_keys), settings.model_dump_json()):
        assert not [s for s in (PASSWORD, KEY) if s in text], text
    bodies = []
    caplog.set_level(logging.DEBUG)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        started(client)
        bodies.append(client.get("/readyz"))
        bodies.append(client.put("/v1/models/active", json={"version": "x"}, headers={"Authorization": f"Bearer {guess}"}))
        bodies.append(client.put("/v1/models/active", content=b"{not json",
                                 headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}))
        bodies.append(client.put("/v1/models/active", json={"version": "nope"}, headers={"Authorization": f"Bearer {KEY}"}))
        bodies.append(client.post("/v1/batch", files={"file": ("a.exe", b"x")}, headers={"Authorization": f"Bearer {KEY}"}))
        bodies.append(client.post("/v1/predict", json={"items": []}, headers={"Authorization": f"Bearer {guess}"}))
        bodies.append(client.get("/v1/models/active"))
        bodies.append(client.get("/metrics"))
    assert bodies[0].status_code == 503 and "store" in bodies[0].text
    assert [r.status_code for r in bodies[1:6]] == [401, 400, 404, 422, 422]
    for response in bodies:
        leaked = [s for s in secrets if s in response.text or s in str(response.headers)]
        assert not leaked, f"{response.request.method} {response.request.url.path}: {response.text[:300]}"
    logged = "\n".join(
        record.getMessage() + (logging.Formatter().formatException(record.exc_info) if record.exc_info else "")
        for record in caplog.records
    )
    assert "the store at" in logged, "the unusable store was logged"
    assert not [s for s in secrets if s in logged], logged[-2000:]
