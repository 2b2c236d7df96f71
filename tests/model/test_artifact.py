from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from model import (
    ArtifactError,
    ChecksumError,
    IncompatibleModelError,
    ModelNotFoundError,
    ModelRegistry,
    Predictor,
)
from model.artifact import MANIFEST_FILE, file_sha256, read_manifest, save_version
from model.state import ARRAYS_FILE, SETTINGS_FILE, STATE_FILES, VOCABULARY_FILE


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
    assert manifest["format"] == 2
    assert sorted(manifest["files"]) == sorted(STATE_FILES)
    assert all(len(entry["sha256"]) == 64 and entry["bytes"] > 0 for entry in manifest["files"].values())
    assert manifest["training_data"]["items"] > 0 and len(manifest["training_data"]["sha256"]) == 64


@pytest.mark.parametrize("name", STATE_FILES)
def test_changed_model_file_is_refused_before_loading(copy: Path, name: str) -> None:
    with (copy / name).open("r+b") as handle:
        handle.seek(100)
        byte = handle.read(1)
        handle.seek(100)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ChecksumError, match=f"{name} does not match the SHA-256"):
        Predictor.load(copy)


def _rewrite(copy: Path, name: str, data: bytes) -> None:
    """Replace a model file and record its new checksum, as someone who can write the directory could."""
    (copy / name).write_bytes(data)
    manifest = json.loads((copy / MANIFEST_FILE).read_text(encoding="utf-8"))
    manifest["files"][name] = {"sha256": file_sha256(copy / name), "bytes": (copy / name).stat().st_size}
    (copy / MANIFEST_FILE).write_text(json.dumps(manifest), encoding="utf-8")


@pytest.mark.parametrize(
    ("name", "damage", "what"),
    [
        (ARRAYS_FILE, lambda data: b"", r"arrays.npz is not a valid numpy archive: (EOFError|ValueError)"),
        (ARRAYS_FILE, lambda data: bytes([172]) * 10, r"arrays.npz is not a valid numpy archive: \w+"),
        (ARRAYS_FILE, lambda data: data[: len(data) // 10], r"arrays.npz is not a valid numpy archive: \w+"),
        (SETTINGS_FILE, lambda data: data[:-5], r"model.json is not valid JSON: JSONDecodeError"),
        (SETTINGS_FILE, lambda data: data.replace(b'"multilabel"', b'"other"'), r"mode must be one of"),
        (VOCABULARY_FILE, lambda data: b'{"words": [1, 2], "chars": []}', r"words must be a list of non-empty"),
    ],
)
def test_a_damaged_model_file_with_a_matching_checksum_is_explained_in_words(
    copy: Path, name: str, damage, what: str
) -> None:
    _rewrite(copy, name, damage((copy / name).read_bytes()))
    with pytest.raises(ArtifactError) as raised:
        Predictor.load(copy)
    assert re.search(what, str(raised.value)), str(raised.value)
    assert not re.search(r": \d*$", str(raised.value)), "ends in a bare number or nothing"


def test_arrays_of_the_wrong_shape_are_refused(copy: Path, predictor: Predictor) -> None:
    with np.load(copy / ARRAYS_FILE, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    arrays["topics.weights"] = arrays["topics.weights"][:, :-1]
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    _rewrite(copy, ARRAYS_FILE, buffer.getvalue())
    with pytest.raises(ArtifactError, match=r"topics.weights is float64 \(5, \d+\), expected float64"):
        Predictor.load(copy)


def test_another_scikit_learn_version_loads_since_no_scikit_learn_object_is_stored(
    copy: Path, predictor: Predictor, corpus
) -> None:
    manifest = json.loads((copy / MANIFEST_FILE).read_text(encoding="utf-8"))
    manifest["libraries"]["scikit-learn"] = "0.24.2"
    (copy / MANIFEST_FILE).write_text(json.dumps(manifest), encoding="utf-8")
    items = [item.as_input() for item in corpus[:5]]
    assert [r.topics for r in Predictor.load(copy).predict(items)] == [r.topics for r in predictor.predict(items)]


def test_an_unknown_format_is_refused(copy: Path) -> None:
    manifest = json.loads((copy / MANIFEST_FILE).read_text(encoding="utf-8"))
    manifest["format"] = 3
    (copy / MANIFEST_FILE).write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(IncompatibleModelError, match=r"has format 3; this xinxi reads format 2"):
        Predictor.load(copy)


def test_missing_version_is_named(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="no model version"):
        Predictor.load(tmp_path / "nothing")
    with pytest.raises(ModelNotFoundError, match="no active model"):
        ModelRegistry(tmp_path).active_path()


def test_save_then_load_gives_identical_scores(fitted, tmp_path: Path, corpus) -> None:
    bundle, manifest = fitted
    again = Predictor.load(save_version(bundle, manifest, tmp_path / "again"))
    items = [item.as_input() for item in corpus[:20]]
    assert [r.to_dict()["topics"] for r in again.predict(items)] == [
        r.to_dict()["topics"] for r in Predictor(bundle, manifest).predict(items)
    ]


def test_save_refuses_an_existing_directory_and_leaves_no_staging(fitted, tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    with pytest.raises(ArtifactError, match="already exists"):
        save_version(fitted[0], {}, tmp_path / "taken")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_crash_while_saving_leaves_no_half_version(fitted, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import model.artifact

    real_write = model.artifact._write_durably
    written: list[str] = []

    def write_then_fail(path: Path, data: bytes) -> None:
        if written:
            raise OSError(28, "No space left on device")
        written.append(path.name)
        real_write(path, data)

    monkeypatch.setattr(model.artifact, "_write_durably", write_then_fail)
    with pytest.raises(OSError, match="No space left"):
        save_version(fitted[0], fitted[1], tmp_path / "v1")
    assert written and list(tmp_path.iterdir()) == []


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


def test_thresholds_must_match_the_labels(fitted) -> None:
    manifest = {**fitted[1], "thresholds": {"industry": 0.5}}
    with pytest.raises(ArtifactError, match="1 thresholds for 5 topic labels"):
        Predictor(fitted[0], manifest)


def test_loading_a_model_builds_no_scikit_learn_object_and_unpickles_nothing(model_dir: Path) -> None:
    code = (
        "import sys, pickle\n"
        "def refuse(*args, **kwargs): raise AssertionError('something unpickled')\n"
        "pickle.loads = pickle.load = pickle.Unpickler = refuse\n"
        "from model import Predictor\n"
        f"predictor = Predictor.load({str(model_dir)!r})\n"
        "predictor.predict_one('3月5日，县委召开招商引资工作推进会。')\n"
        "print(','.join(n for n in ('sklearn', 'joblib') if n in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
