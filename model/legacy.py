"""Converting a version of the first format (a joblib pickle) into the plain-data format, once, on request.

This is the one place in xinxi that unpickles, and only for ``xinxi models
convert VERSION``, which warns first: unpickling runs whatever code the file
holds, so only files one trusts (written by xinxi on this machine) may be
converted. Every other path refuses pickled versions
(:func:`model.artifact.check_format`).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from model.artifact import (
    MANIFEST_FILE,
    PICKLE_FILE,
    is_pickled,
    library_versions,
    new_version_id,
    read_manifest,
    verified_bytes,
)
from model.errors import ArtifactError, IncompatibleModelError, describe_error
from model.registry import ModelRegistry
from model.state import ModelState

_CARRIED = ("created_at", "labels", "mode", "thresholds", "metrics", "training_data", "seed", "hyperparameters",
            "segmenter", "vocabulary")


def convert_pickled_version(registry: ModelRegistry, version: str) -> str:
    """Unpickle a first-format version and save it as a new version of the plain-data format.

    The pickle is checked against its manifest's SHA-256 first and must have
    been saved with the installed scikit-learn. The new version carries the
    old one's manifest (labels, thresholds, metrics, training data) with
    ``converted_from``; it is not activated here.

    Returns
    -------
    str
        The new version's id.

    Raises
    ------
    ArtifactError
        If ``version`` is not a pickled version, fails its checksum, or does
        not unpickle into a xinxi model.
    IncompatibleModelError
        If it was saved with another scikit-learn version.
    """
    directory = registry.path(version)
    manifest = read_manifest(directory)
    if not is_pickled(manifest):
        raise ArtifactError(f"model {version} is not in the old pickle format: there is nothing to convert")
    saved = (manifest.get("libraries") or {}).get("scikit-learn")
    installed = library_versions().get("scikit-learn")
    if saved != installed:
        raise IncompatibleModelError(
            f"model {version} was pickled with scikit-learn {saved} but {installed} is installed, so it cannot "
            "be converted here; retrain with `xinxi train` (or convert with the scikit-learn version that saved it)"
        )
    bundle = _unpickle(directory, manifest)
    state = ModelState.from_fitted(bundle)
    labels = list((manifest.get("labels") or {}).get("topics") or [])
    if state.topic_labels != labels:
        raise IncompatibleModelError(
            f"model {version}: labels in the model {state.topic_labels} differ from its manifest {labels}"
        )
    new_manifest: dict[str, Any] = {key: manifest[key] for key in _CARRIED if key in manifest}
    new_manifest["converted_from"] = {"version": version, "sha256": manifest["files"][PICKLE_FILE]["sha256"]}
    new_version = new_version_id()
    new_manifest["version"] = new_version
    registry.save(state, new_manifest, new_version)
    return new_version


def _unpickle(directory: Path, manifest: dict[str, Any]) -> Any:
    import joblib

    data = verified_bytes(directory, manifest, PICKLE_FILE)
    try:
        bundle = joblib.load(io.BytesIO(data))
    except Exception as exc:  # a verified file that still fails to unpickle
        raise ArtifactError(
            f"could not read {directory / PICKLE_FILE}: the file is truncated or not a model "
            f"({describe_error(exc)}); retrain with `xinxi train`"
        ) from exc
    if not isinstance(bundle, dict) or "topics" not in bundle or "topic_labels" not in bundle:
        raise ArtifactError(f"{directory / PICKLE_FILE} is not a xinxi model (see {MANIFEST_FILE})")
    return bundle
