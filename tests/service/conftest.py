"""Fixtures of the service tests: apps over the session's trained model, each with its own SQLite file."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from model import ModelRegistry
from model.artifact import file_sha256
from model.state import SETTINGS_FILE
from service.app import create_app
from service.settings import Settings

SAMPLE_ITEM = {
    "id": "sample-1",
    "title": "青溪县多措并举推动招商引资提质增效",
    "text": (
        "今年以来，青溪县坚持把招商引资作为经济工作的“一号工程”，1至5月新签约项目21个，协议总投资48.6亿元。"
        "一是强化产业链招商，围绕农产品加工、新型建材两条主导产业链，梳理缺链补链项目28个；"
        "二是创新以商招商，依托在外青溪商会举办推介会3场，签约项目12个、总投资36.5亿元；"
        "三是优化营商环境，推行项目审批“一窗受理”，平均审批时限压缩40%。"
        "目前仍存在项目落地慢、要素保障不足等问题，下一步将建立在谈项目台账，实行县级领导包联。"
    ),
}


def make_settings(data_dir: Path, tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": f"sqlite:///{tmp_path / 'xinxi.db'}",
        "model_poll_seconds": 0.1,
    }
    values.update(overrides)
    return Settings(**values)


def started(client: TestClient) -> TestClient:
    """Wait (bounded) until the app's background loader has settled."""
    active = client.app.state.active_model  # type: ignore[attr-defined]
    if active.registry.active_id() is not None:
        assert active.ready.wait(60), f"model did not load: state {active.state}"
    return client


@pytest.fixture(scope="module")
def client(model_dir: Path, data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One app over the session model, shared by a module's read-only tests."""
    settings = make_settings(data_dir, tmp_path_factory.mktemp("db"))
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield started(test_client)


@pytest.fixture
def private_data_dir(model_dir: Path, tmp_path: Path) -> Path:
    """A data directory of this test alone, holding a copy of the session model (active)."""
    root = tmp_path / "data"
    shutil.copytree(model_dir, root / "models" / model_dir.name)
    ModelRegistry(root).activate(model_dir.name)
    return root


def copy_version(root: Path, source: Path, version: str) -> str:
    """Add ``source`` to the registry at ``root`` under a new version id."""
    target = root / "models" / version
    shutil.copytree(source, target)
    manifest_path = target / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["version"] = version
    manifest_path.write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    return version


def malformed_version(
    root: Path, source: Path, version: str, damage: Callable[[dict[str, Any], dict[str, Any]], None]
) -> str:
    """Add a copy of ``source`` whose model.json or manifest ``damage`` has changed, with checksums that still match."""
    copy_version(root, source, version)
    target = root / "models" / version
    settings = json.loads((target / SETTINGS_FILE).read_text(encoding="utf-8"))
    manifest_path = target / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    damage(settings, manifest)
    (target / SETTINGS_FILE).write_text(json.dumps(settings, ensure_ascii=False), encoding="utf-8")
    manifest["files"][SETTINGS_FILE] = {
        "sha256": file_sha256(target / SETTINGS_FILE),
        "bytes": (target / SETTINGS_FILE).stat().st_size,
    }
    manifest_path.write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    return version


def short_thresholds(settings: dict[str, Any], manifest: dict[str, Any]) -> None:
    manifest["thresholds"] = dict(list(manifest["thresholds"].items())[:-1])


def no_topic_head(settings: dict[str, Any], manifest: dict[str, Any]) -> None:
    settings["heads"] = ["kind"]


def wrong_width(settings: dict[str, Any], manifest: dict[str, Any]) -> None:
    settings["n_features"] += 1  # the blocks and the arrays no longer agree
