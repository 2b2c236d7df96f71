"""Shared fixtures: a small labelled corpus drawn from datasets/, and one tiny trained model."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from model import ModelRegistry, Predictor
from model.artifact import new_version_id
from training import SEED_DATA, fit_model, load_items
from training.data import Item

SMALL_SIZE = 300

# Property tests: a bounded number of examples, so the suite stays fast, and no
# per-example deadline: the machine is shared, and timing belongs in bench/.
# HYPOTHESIS_PROFILE=thorough runs many more where there is time.
settings.register_profile(
    "xinxi", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.register_profile("thorough", parent=settings.get_profile("xinxi"), max_examples=2_000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "xinxi"))


def small_items() -> list[Item]:
    """A deterministic, evenly spread sample of the seed corpus (every k-th item)."""
    items, _ = load_items(SEED_DATA, require_labels=True)
    step = max(len(items) // SMALL_SIZE, 1)
    return items[::step][:SMALL_SIZE]


def write_jsonl(items: list[Item], path: Path) -> Path:
    with path.open("w", encoding="utf-8") as stream:
        for item in items:
            record = {"id": item.id, "title": item.title, "text": item.text,
                      "topics": item.topics, "kind": item.kind}
            stream.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


@pytest.fixture(autouse=True)
def _no_xinxi_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tests see the settings they make, not the XINXI_* variables of whoever runs them."""
    from service.settings import get_settings

    for name in [name for name in os.environ if name.startswith("XINXI_")]:
        monkeypatch.delenv(name)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def corpus() -> list[Item]:
    return small_items()


@pytest.fixture(scope="session")
def corpus_file(tmp_path_factory: pytest.TempPathFactory, corpus: list[Item]) -> Path:
    return write_jsonl(corpus, tmp_path_factory.mktemp("corpus") / "small.jsonl")


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory with one trained, active model version."""
    return tmp_path_factory.mktemp("xinxi-data")


@pytest.fixture(scope="session")
def fitted(corpus: list[Item]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The session model as the trainer leaves it in memory: fitted scikit-learn objects and the manifest."""
    return fit_model(corpus, seed=0, folds=3, min_examples=5)


@pytest.fixture(scope="session")
def model_dir(data_dir: Path, fitted: tuple[dict[str, Any], dict[str, Any]]) -> Path:
    """The active model of ``data_dir``: the session model, saved (as ``train_version`` saves) and activated."""
    bundle, manifest = fitted
    registry = ModelRegistry(data_dir)
    version = new_version_id()
    directory = registry.save(bundle, {**manifest, "version": version}, version)
    registry.activate(version)
    return directory


@pytest.fixture(scope="session")
def predictor(model_dir: Path) -> Predictor:
    return Predictor.load(model_dir)
