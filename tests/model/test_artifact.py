from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from model import (
    ArtifactError,
    ChecksumError,
    IncompatibleModelError,
    ModelNotFoundError,
    ModelRegistry,
    Predictor,
)
from model.artifact import MANIFEST_FILE, MODEL_FILE, file_sha256, read_manifest, save_version


@pytest.fixture()
def copy(model_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / model_dir.name
    shutil.copytree(model_dir, target)
    return target


def test_manifest_records_what_the_model_depends_on(model_dir: Path) -> None:
    manifest = read_manifest(model_dir)
    for key in ("version", "created_at", "training_data", "labels", "thresholds", "metrics",
                "libraries", "segmenter", "files", "hyperparameters", "seed"):
        assert key in manifest, key
    assert manifest["labels"]["topics"] == ["industry", "investment", "rural", "hot_issue", "emergency"]
    assert manifest["segmenter"]["engine"] == "rjieba"
    assert len(manifest["files"][MODEL_FILE]["sha256"]) == 64
    assert manifest["training_data"]["items"] > 0 and len(manifest["training_data"]["sha256"]) == 64


def test_changed_model_file_is_refused_before_loading(copy: Path) -> None:
    with (copy / MODEL_FILE).open("r+b") as handle:
        handle.seek(100)
        byte = handle.read(1)
        handle.seek(100)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ChecksumError, match="does not match the SHA-256"):
        Predictor.load(copy)


@pytest.mark.parametrize(
    ("damage", "what"),
    [
        (lambda data: b"", r"EOFError \(no message\)"),
        (lambda data: bytes([172]) * 10, "KeyError: 172"),
        (lambda data: data[: len(data) // 10], r"(EOFError|UnpicklingError|ValueError)\b"),
    ],
)
def test_a_damaged_model_file_with_a_matching_checksum_is_explained_in_words(copy: Path, damage, what: str) -> None:
    (copy / MODEL_FILE).write_bytes(damage((copy / MODEL_FILE).read_bytes()))
    manifest = json.loads((copy / MANIFEST_FILE).read_text(encoding="utf-8"))
    manifest["files"][MODEL_FILE] = {"sha256": file_sha256(copy / MODEL_FILE), "bytes": (copy / MODEL_FILE).stat().st_size}
    (copy / MANIFEST_FILE).write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(ArtifactError, match="the file is truncated or not a model") as raised:
        Predictor.load(copy)
    assert re.search(what, str(raised.value)), str(raised.value)
    assert not re.search(r": \d*$", str(raised.value)), "ends in a bare number or nothing"


def test_other_scikit_learn_version_is_refused(copy: Path) -> None:
    manifest = json.loads((copy / MANIFEST_FILE).read_text(encoding="utf-8"))
    manifest["libraries"]["scikit-learn"] = "0.24.2"
    (copy / MANIFEST_FILE).write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(IncompatibleModelError, match=r"scikit-learn 0.24.2 .* retrain"):
        Predictor.load(copy)


def test_missing_version_is_named(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="no model version"):
        Predictor.load(tmp_path / "nothing")
    with pytest.raises(ModelNotFoundError, match="no active model"):
        ModelRegistry(tmp_path).active_path()


def test_save_then_load_gives_identical_scores(predictor: Predictor, tmp_path: Path, corpus) -> None:
    manifest = {k: v for k, v in predictor.manifest.items() if k not in ("files", "version")}
    again = Predictor.load(save_version(dict(predictor.bundle), manifest, tmp_path / "again"))
    items = [item.as_input() for item in corpus[:20]]
    assert [r.to_dict()["topics"] for r in again.predict(items)] == [
        r.to_dict()["topics"] for r in predictor.predict(items)
    ]


def test_save_refuses_an_existing_directory_and_leaves_no_staging(predictor: Predictor, tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    with pytest.raises(Exception, match="already exists"):
        save_version(dict(predictor.bundle), {}, tmp_path / "taken")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_crash_while_saving_leaves_no_half_version(tmp_path: Path) -> None:
    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        save_version({"x": Unpicklable()}, {}, tmp_path / "v1")
    assert list(tmp_path.iterdir()) == []


def test_registry_activation_replaces_the_pointer_and_refuses_bad_ids(model_dir: Path, tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    for name in ("v1", "v2"):
        shutil.copytree(model_dir, registry.models / name)
    registry.activate("v1")
    registry.activate("v2")
    assert registry.active_id() == "v2"
    assert sorted(p.name for p in registry.models.iterdir()) == ["ACTIVE", "AUDIT.jsonl", "v1", "v2"], (
        "no temporary files left")
    with pytest.raises(ModelNotFoundError):
        registry.activate("../escape")
    with pytest.raises(ModelNotFoundError):
        registry.activate("v3")
    assert registry.active_id() == "v2"
    assert [m["version"] for m in registry.versions()] == [model_dir.name, model_dir.name]


def test_other_domain_dictionary_is_refused(copy: Path) -> None:
    manifest = json.loads((copy / MANIFEST_FILE).read_text(encoding="utf-8"))
    manifest["segmenter"]["dictionary_sha256"] = "0" * 64
    (copy / MANIFEST_FILE).write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(IncompatibleModelError, match="another domain dictionary"):
        Predictor.load(copy)


def test_a_model_segments_with_the_engine_it_was_trained_with(copy: Path, predictor: Predictor, corpus) -> None:
    manifest = json.loads((copy / MANIFEST_FILE).read_text(encoding="utf-8"))
    manifest["segmenter"]["engine"] = "jieba"
    (copy / MANIFEST_FILE).write_text(json.dumps(manifest), encoding="utf-8")
    with_jieba = Predictor.load(copy)
    assert with_jieba.engine == "jieba" and predictor.engine == "rjieba"
    assert {block.engine for block in with_jieba._compiled.blocks} == {"jieba"}
    items = [item.as_input() for item in corpus[:10]]
    assert [r.topics for r in with_jieba.predict(items)] == [r.topics for r in predictor.predict(items)]


def test_manifest_that_is_not_an_object_is_refused(copy: Path) -> None:
    (copy / MANIFEST_FILE).write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ArtifactError, match="not a manifest"):
        Predictor.load(copy)


def test_model_package_never_imports_the_service_or_training() -> None:
    code = (
        "import sys, pkgutil, importlib, model\n"
        "for m in pkgutil.iter_modules(model.__path__): importlib.import_module('model.' + m.name)\n"
        "bad = [n for n in ('fastapi', 'pydantic_settings', 'service', 'training', 'uvicorn') if n in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_thresholds_must_match_the_labels(predictor: Predictor) -> None:
    manifest = {**predictor.manifest, "thresholds": {"industry": 0.5}}
    with pytest.raises(ArtifactError, match="1 thresholds for 5 topic labels"):
        Predictor(predictor.bundle, manifest)
