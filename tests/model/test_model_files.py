"""Model files that cannot run code: plain state saved and loaded faithfully, pickles refused, conversion on request."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest

from model import ArtifactError, ModelRegistry, PickledModelError, Predictor
from model.artifact import MANIFEST_FILE, PICKLE_FILE, file_sha256, library_versions, save_version
from model.legacy import convert_pickled_version
from model.state import ARRAYS_FILE
from model.text import join_document
from training import fit_model

# Every kind of block, n-gram path (integer keys and strings), head and calibration setting the trainer
# can be asked for (FeatureParams, training.pipeline), in few fits.
TRAINER_SETTINGS: list[dict[str, Any]] = [
    {},
    {"features": {"word_ngrams": (1, 3), "char_ngrams": (1, 3), "use_structure": True, "sublinear_tf": False,
                  "max_features": 3000},
     "topics": {"estimator": "logreg"}, "kind": {"estimator": "sgd", "class_weight": None}},
    {"features": {"use_words": False, "char_ngrams": (2, 4), "use_structure": True, "structure_weight": 0.5,
                  "min_df": 1}},
]


class RunsCode:
    """Unpickling this writes ``marker``: what an attacker's model.joblib would do, harmlessly."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, (f"open({str(self.marker)!r}, 'w').write('code ran')",))


def plant_pickle(source: Path, target: Path, marker: Path, how: str = "joblib") -> Path:
    """A version directory at ``target`` whose model would run code when unpickled, with matching checksums.

    ``joblib``: a first-format version (model.joblib and a manifest that
    lists it, as whoever can write the data directory could make).
    ``npz-object``: a current-format version whose arrays.npz holds a pickled
    object array. ``npz-pickle``: arrays.npz is a bare pickle.
    """
    shutil.copytree(source, target)
    manifest = json.loads((target / MANIFEST_FILE).read_text(encoding="utf-8"))
    manifest["version"] = target.name
    evil = RunsCode(marker)
    if how == "joblib":
        for name in manifest["files"]:
            (target / name).unlink()
        joblib.dump({"topics": evil, "kind": None, "topic_labels": manifest["labels"]["topics"], "mode": "multilabel"},
                    target / PICKLE_FILE)
        manifest["format"] = 1
        manifest["files"] = {}
        name = PICKLE_FILE
    else:
        buffer = io.BytesIO()
        if how == "npz-object":
            np.savez(buffer, **{"topics.weights": np.array([evil], dtype=object)})
        else:
            joblib.dump(evil, buffer)
        (target / ARRAYS_FILE).write_bytes(buffer.getvalue())
        name = ARRAYS_FILE
    manifest["files"][name] = {"sha256": file_sha256(target / name), "bytes": (target / name).stat().st_size}
    (target / MANIFEST_FILE).write_text(json.dumps(manifest), encoding="utf-8")
    return target


def test_the_planted_pickle_really_runs_code_when_unpickled(model_dir: Path, tmp_path: Path) -> None:
    """The control: without the refusal, loading the planted file would write the marker."""
    planted = plant_pickle(model_dir, tmp_path / "planted", tmp_path / "marker")
    joblib.load(planted / PICKLE_FILE)
    assert (tmp_path / "marker").read_text() == "code ran"


@pytest.mark.parametrize("how", ["joblib", "npz-object", "npz-pickle"])
def test_predictor_load_refuses_a_planted_pickle_and_runs_nothing(model_dir: Path, tmp_path: Path, how: str) -> None:
    marker = tmp_path / "marker"
    planted = plant_pickle(model_dir, tmp_path / "planted", marker, how)
    expected = {
        "joblib": r"old pickle format .* `xinxi train`.* `xinxi models convert planted`",
        "npz-object": r"arrays.npz is not a valid numpy archive: ValueError: Object arrays cannot be loaded",
        "npz-pickle": r"arrays.npz is not a valid numpy archive: ValueError: This file contains pickled",
    }[how]
    with pytest.raises(ArtifactError, match=expected):
        Predictor.load(planted)
    assert not marker.exists()


@pytest.mark.parametrize("settings", TRAINER_SETTINGS, ids=lambda s: json.dumps(s) if s else "defaults")
def test_saved_and_loaded_model_scores_as_the_fitted_one(corpus, tmp_path: Path, settings: dict[str, Any]) -> None:
    items = corpus[::4]
    bundle, manifest = fit_model(items, seed=0, folds=2, min_examples=3,
                                 params={**settings, "data": {"threshold_split": "kfold"}})
    in_memory = Predictor(bundle, manifest)
    loaded = Predictor.load(save_version(bundle, manifest, tmp_path / "v1"))
    probe = [item.as_input() for item in corpus[1::7]] + [{"text": "no Chinese 123"}, {"text": "单字"}]
    topics, kind = loaded.probabilities(probe)
    memory_topics, memory_kind = in_memory.probabilities(probe)
    np.testing.assert_array_equal(topics, memory_topics)  # the same arrays, exactly
    np.testing.assert_array_equal(kind, memory_kind)
    documents = [join_document(item.get("title"), item["text"]) for item in probe]
    # scikit-learn's TF-IDF is float32: agreement to its rounding.
    np.testing.assert_allclose(topics, bundle["topics"].predict_proba(documents), rtol=0, atol=2e-6)
    np.testing.assert_allclose(kind, bundle["kind"].predict_proba(documents)[:, 1], rtol=0, atol=2e-6)
    assert [r.to_dict() for r in loaded.predict(probe)] == [
        {**r.to_dict(), "model_version": "v1"} for r in in_memory.predict(probe)
    ]


def test_a_head_that_cannot_be_stored_as_plain_data_is_refused_not_pickled(corpus, tmp_path: Path) -> None:
    bundle, manifest = fit_model(corpus[::4], seed=0, folds=2, min_examples=3,
                                 params={"calibration": {"method": "isotonic"}, "data": {"threshold_split": "kfold"}})
    with pytest.raises(ArtifactError, match=r"IsotonicRegression calibration is not stored as plain data.*sigmoid"):
        save_version(bundle, manifest, tmp_path / "v1")
    assert list(tmp_path.iterdir()) == []


def _pickled_version(registry: ModelRegistry, fitted: tuple[dict, dict], version: str) -> Path:
    """A genuine version of the first format, as xinxi saved them before (joblib pickle and its manifest)."""
    bundle, manifest = fitted
    directory = registry.models / version
    directory.mkdir(parents=True)
    joblib.dump(bundle, directory / PICKLE_FILE, compress=3)
    entry = {"sha256": file_sha256(directory / PICKLE_FILE), "bytes": (directory / PICKLE_FILE).stat().st_size}
    old = {**manifest, "version": version, "format": 1, "libraries": library_versions(), "files": {PICKLE_FILE: entry}}
    (directory / MANIFEST_FILE).write_text(json.dumps(old, ensure_ascii=False), encoding="utf-8")
    return directory


def test_a_pickled_version_is_refused_and_converted_once_on_request(fitted, corpus, tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    old = _pickled_version(registry, fitted, "20260101-000000-0001")
    with pytest.raises(PickledModelError, match=r"Retrain with `xinxi train`, or convert this version once"):
        Predictor.load(old)
    new_version = convert_pickled_version(registry, old.name)
    converted = Predictor.load(registry.path(new_version))
    items = [item.as_input() for item in corpus[:30]]
    assert [{**r.to_dict(), "model_version": None} for r in converted.predict(items)] == [
        {**r.to_dict(), "model_version": None} for r in Predictor(*fitted).predict(items)
    ]
    manifest = converted.manifest
    assert manifest["converted_from"]["version"] == old.name and manifest["thresholds"] == fitted[1]["thresholds"]
    assert (old / PICKLE_FILE).is_file(), "the old version is left as it was"
    with pytest.raises(ArtifactError, match="not in the old pickle format: there is nothing to convert"):
        convert_pickled_version(registry, new_version)


def test_a_pickle_of_another_scikit_learn_version_is_not_converted(fitted, tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    old = _pickled_version(registry, fitted, "20260101-000000-0002")
    manifest = json.loads((old / MANIFEST_FILE).read_text(encoding="utf-8"))
    manifest["libraries"]["scikit-learn"] = "0.24.2"
    (old / MANIFEST_FILE).write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(ArtifactError, match=r"pickled with scikit-learn 0.24.2 .* retrain with `xinxi train`"):
        convert_pickled_version(registry, old.name)
    assert [m["version"] for m in registry.versions()] == [old.name]
