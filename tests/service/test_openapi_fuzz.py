"""schemathesis against the service's own OpenAPI schema: no 500, no answer that breaks the schema.

Every operation of ``app.openapi()`` is a test case, so routes added later are
fuzzed without changing this file. Each generated request is sent twice through
the in-process app (the lifespan ran, the model is loaded): as generated, with
the key where the operation declares it, and without any key; both answers are
checked against the schema, and a keyed operation must answer 401 without it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings

from model import ModelRegistry
from service.app import create_app
from service.settings import Settings
from tests.service.conftest import make_settings, started

KEY = "fuzz-key"
BASE_URL = "http://testserver"
# Per operation, each sent twice; HYPOTHESIS_PROFILE=thorough sends 500.
EXAMPLES = 500 if os.environ.get("HYPOTHESIS_PROFILE") == "thorough" else 20


@pytest.fixture(scope="module")
def fuzz_client(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    root = tmp_path_factory.mktemp("fuzz") / "data"
    shutil.copytree(model_dir, root / "models" / model_dir.name)
    ModelRegistry(root).activate(model_dir.name)
    settings = make_settings(root, root.parent, api_keys=KEY, max_upload_bytes=64_000)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield started(client)


# The schema of an app that is built but not started: routes and their schemas
# do not depend on the settings or the model. (Not `from_fixture`: its lazy
# loader does not run under pytest 9.)
#
# Three of schemathesis's checks are tuned: a request broken by being too big is
# rightly refused with 413 (the body limit comes before the schema), and
# "schema-valid data must be accepted" is off, because xinxi checks more than
# JSON Schema can say (a text of only white space, a file whose contents are
# not what its name says) and answers that with a documented 422.
CONFIG = schemathesis.config.SchemathesisConfig.from_dict({
    "checks": {
        "negative_data_rejection": {
            "expected-statuses": [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429],
        },
        "positive_data_acceptance": {"enabled": False},
        # It re-sends the request without the key over the network, which an in-process app is not
        # on; the test below sends every request without the key too, and tests/service/test_security.py
        # tries wrong keys on every state-changing route.
        "ignored_auth": {"enabled": False},
    },
    # The key for the operations that declare the bearer scheme; schemathesis leaves it out on purpose
    # in some negative cases.
    "auth": {"openapi": {"apiKey": {"bearer": KEY}}},
})
OPENAPI = create_app(Settings(data_dir=Path("unused"), api_keys=KEY)).openapi()
schema = schemathesis.openapi.from_dict(OPENAPI, config=CONFIG)


def send(client: TestClient, case: Any, *, without_key: bool) -> tuple[Any, dict[str, str]]:
    """The case as schemathesis would send it with requests, through the in-process app; and its headers."""
    kwargs = case.as_transport_kwargs(base_url=BASE_URL)
    headers = {k: v for k, v in (kwargs.get("headers") or {}).items() if not (without_key and k.lower() == "authorization")}
    request = requests.Request(
        method=kwargs["method"], url=kwargs["url"], headers=headers, params=kwargs.get("params"),
        cookies=kwargs.get("cookies"), json=kwargs.get("json"), data=kwargs.get("data"), files=kwargs.get("files"),
    ).prepare()
    assert request.url is not None and request.method is not None
    response = client.request(request.method, request.url, headers=dict(request.headers), content=request.body)
    return response, headers


@schema.parametrize()
@settings(max_examples=EXAMPLES, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_within_its_schema(case: Any, fuzz_client: TestClient) -> None:
    operation = OPENAPI["paths"].get(case.path, {}).get(case.method.lower(), {})
    for without_key in (False, True):
        response, headers = send(fuzz_client, case, without_key=without_key)
        assert response.status_code < 500 or response.status_code == 503, (
            f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:500]}"
        )
        if without_key and operation.get("security"):
            assert response.status_code == 401, f"{case.method} {case.formatted_path} without the key"
        case.validate_response(response, headers=headers)
