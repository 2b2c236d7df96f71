"""schemathesis against the service's own OpenAPI schema: no 500, no answer that breaks the schema.

Every operation of ``app.openapi()`` is a test case, so routes added later are
fuzzed without changing this file. Each generated request is sent twice through
the in-process app (the lifespan ran, the model is loaded): without a key and
with a valid one, and both answers are checked against the schema.
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
EXAMPLES = 500 if os.environ.get("HYPOTHESIS_PROFILE") == "thorough" else 25


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
# Two of schemathesis's checks are tuned: a request broken by being too big is
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
    },
})
schema = schemathesis.openapi.from_dict(
    create_app(Settings(data_dir=Path("unused"), api_keys=KEY)).openapi(), config=CONFIG
)


def send(client: TestClient, case: Any, headers: dict[str, str]) -> Any:
    """The case as schemathesis would send it with requests, through the in-process app."""
    kwargs = case.as_transport_kwargs(base_url=BASE_URL, headers=headers)
    request = requests.Request(
        method=kwargs["method"], url=kwargs["url"], headers=kwargs.get("headers"), params=kwargs.get("params"),
        cookies=kwargs.get("cookies"), json=kwargs.get("json"), data=kwargs.get("data"), files=kwargs.get("files"),
    ).prepare()
    assert request.url is not None and request.method is not None
    return client.request(request.method, request.url, headers=dict(request.headers), content=request.body)


@schema.parametrize()
@settings(max_examples=EXAMPLES, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_within_its_schema(case: Any, fuzz_client: TestClient) -> None:
    for headers in ({}, {"Authorization": f"Bearer {KEY}"}):
        response = send(fuzz_client, case, headers)
        assert response.status_code < 500 or response.status_code == 503, (
            f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:500]}"
        )
        case.validate_response(response, headers=headers)
