"""A fitted model as plain data: vocabularies, IDF, structure scaling, linear heads and their sigmoids.

This is what a model version stores and what the :class:`~model.predictor.Predictor`
scores with. It is read out of the fitted scikit-learn objects once, after
training (:meth:`ModelState.from_fitted`), and written as JSON and a numpy
``.npz`` archive (:meth:`ModelState.to_files`), which load without running any
code: ``np.load(..., allow_pickle=False)`` and ``json.loads`` (the approach of
safetensors and skops). Loading (:meth:`ModelState.from_files`) builds no
scikit-learn object and checks every shape, type and value it reads.

Files of a version:

``model.json``
    format, topic labels, mode, and the feature blocks in column order
    (words or characters with their n-gram range, sublinear TF and weight;
    the structure block with its feature names and weight), and the heads.
``vocabulary.json``
    the terms of each text block, in column order.
``arrays.npz``
    ``<block>.idf``, ``structure.mean`` and ``structure.scale``, and per head
    (``topics``, ``kind``) its ``weights`` (labels x features), ``intercepts``
    and sigmoid ``slopes`` and ``offsets``; all float64.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from scipy import sparse
from scipy.special import expit

from model.errors import ArtifactError, describe_error
from model.structure import FEATURE_NAMES
from model.text import char_view, title_tokens, word_tokens

STATE_FORMAT = 2
"""Version of the plain-data layout below; 1 was the joblib pickle."""
SETTINGS_FILE = "model.json"
VOCABULARY_FILE = "vocabulary.json"
ARRAYS_FILE = "arrays.npz"
STATE_FILES = (SETTINGS_FILE, VOCABULARY_FILE, ARRAYS_FILE)
"""The files a version of this format holds besides its manifest; nothing else is ever read."""

TEXT_BLOCKS = ("words", "chars", "title")
MODES = ("multilabel", "multiclass")
HEADS = ("topics", "kind")
_MAX_NGRAM = 8
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest a zip can record: the same bytes for the same arrays


@dataclass
class TextBlock:
    """One TF-IDF vectorizer: its terms in column order, their IDF and its settings."""

    name: str  # "words" (word_tokens), "chars" (characters of char_view) or "title" (title_tokens: the title's words)
    ngram_range: tuple[int, int]
    sublinear_tf: bool
    weight: float
    terms: list[str]
    idf: np.ndarray


@dataclass
class StructureBlock:
    """The standardised structure signals (:data:`model.structure.FEATURE_NAMES`) and their weight."""

    mean: np.ndarray
    scale: np.ndarray
    weight: float

    @property
    def size(self) -> int:
        return len(self.mean)


@dataclass
class LinearHead:
    """A calibrated linear classifier: one row of weights, an intercept and a sigmoid per label."""

    weights: np.ndarray  # (n_labels, n_features)
    intercepts: np.ndarray  # (n_labels,)
    slopes: np.ndarray  # sigmoid a_ per label
    offsets: np.ndarray  # sigmoid b_ per label

    @cached_property
    def _columns(self) -> np.ndarray:
        """Weights as (features x labels), contiguous, so the product never copies them."""
        return np.ascontiguousarray(self.weights.T)

    def probabilities(self, features: sparse.csr_matrix) -> np.ndarray:
        scores = np.asarray(features @ self._columns) + self.intercepts
        return expit(-(self.slopes * scores + self.offsets))


@dataclass
class ModelState:
    """Everything a Predictor needs to score, as plain data."""

    topic_labels: list[str]
    mode: str
    blocks: list[TextBlock | StructureBlock]  # in column order
    topics: LinearHead
    kind: LinearHead | None

    @property
    def n_features(self) -> int:
        return sum(len(b.terms) if isinstance(b, TextBlock) else b.size for b in self.blocks)

    @classmethod
    def from_fitted(cls, bundle: Mapping[str, Any]) -> ModelState:
        """Read the plain state out of a trainer's fitted bundle.

        ``bundle`` holds ``topics`` (and optionally ``kind``): pipelines of one
        shared ``features`` union and a one-vs-rest (or single) calibrated
        linear classifier, with ``topic_labels`` and ``mode``.

        Raises
        ------
        ArtifactError
            For what cannot be stored as plain data (another vectorizer
            setting, isotonic calibration, an ensemble of calibrated models),
            with what to change.
        """
        try:
            topics = bundle["topics"]
            union = topics.named_steps["features"]
            kind = bundle.get("kind")
            if kind is not None and kind.named_steps["features"] is not union:
                raise ArtifactError("the kind head must share the topic head's features step")
            return cls(
                topic_labels=[str(label) for label in bundle["topic_labels"]],
                mode=str(bundle.get("mode", "multilabel")),
                blocks=feature_blocks(union),
                topics=_head_of(topics.named_steps["classifier"].estimators_),
                kind=None if kind is None else _head_of([kind.named_steps["classifier"]]),
            )
        except ArtifactError:
            raise
        except (KeyError, AttributeError, TypeError, IndexError) as exc:
            raise ArtifactError(f"not a fitted xinxi model: {describe_error(exc)}") from exc

    def to_files(self) -> dict[str, bytes]:
        """The version's files (:data:`STATE_FILES`), byte-identical for the same state."""
        arrays: dict[str, np.ndarray] = {}
        settings_blocks: list[dict[str, Any]] = []
        vocabulary: dict[str, list[str]] = {}
        for block in self.blocks:
            if isinstance(block, TextBlock):
                settings_blocks.append({
                    "name": block.name, "ngram_range": list(block.ngram_range), "sublinear_tf": block.sublinear_tf,
                    "weight": block.weight, "size": len(block.terms),
                })
                vocabulary[block.name] = list(block.terms)
                arrays[f"{block.name}.idf"] = block.idf
            else:
                settings_blocks.append(
                    {"name": "structure", "features": list(FEATURE_NAMES), "weight": block.weight, "size": block.size}
                )
                arrays["structure.mean"], arrays["structure.scale"] = block.mean, block.scale
        heads = {"topics": self.topics, "kind": self.kind}
        for name, head in heads.items():
            if head is not None:
                for part in ("weights", "intercepts", "slopes", "offsets"):
                    arrays[f"{name}.{part}"] = getattr(head, part)
        settings = {
            "format": STATE_FORMAT,
            "topic_labels": self.topic_labels,
            "mode": self.mode,
            "n_features": self.n_features,
            "blocks": settings_blocks,
            "heads": [name for name, head in heads.items() if head is not None],
        }
        return {
            SETTINGS_FILE: _json_bytes(settings, indent=2),
            VOCABULARY_FILE: _json_bytes(vocabulary, indent=None),
            ARRAYS_FILE: _npz_bytes(arrays),
        }

    @classmethod
    def from_files(cls, files: Mapping[str, bytes], where: str = "the model") -> ModelState:
        """Parse and check the files written by :meth:`to_files`; no code runs and no estimator is built.

        Raises
        ------
        ArtifactError
            Naming the file and what is wrong with it.
        """
        settings = _json_object(files, SETTINGS_FILE, where)
        vocabulary = _json_object(files, VOCABULARY_FILE, where)
        arrays = _npz_arrays(files, where)
        return _State(settings, vocabulary, arrays, where).build()


class _State:
    """Checks the parsed files of a version, one field at a time, and builds the :class:`ModelState`."""

    def __init__(self, settings: dict[str, Any], vocabulary: dict[str, Any], arrays: dict[str, np.ndarray],
                 where: str) -> None:
        self.settings, self.vocabulary, self.arrays, self.where = settings, vocabulary, arrays, where

    def fail(self, name: str, what: str) -> ArtifactError:
        return ArtifactError(f"{self.where}/{name} is not a valid xinxi model file: {what}")

    def build(self) -> ModelState:
        settings = self.settings
        if settings.get("format") != STATE_FORMAT:
            raise self.fail(SETTINGS_FILE, f"format {settings.get('format')!r}, expected {STATE_FORMAT}")
        labels = settings.get("topic_labels")
        if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
            raise self.fail(SETTINGS_FILE, "topic_labels must be a non-empty list of strings")
        if settings.get("mode") not in MODES:
            raise self.fail(SETTINGS_FILE, f"mode must be one of {', '.join(MODES)}")
        blocks = settings.get("blocks")
        if not isinstance(blocks, list) or not blocks:
            raise self.fail(SETTINGS_FILE, "blocks must be a non-empty list")
        built = [self.block(entry) for entry in blocks]
        names = [b.name if isinstance(b, TextBlock) else "structure" for b in built]
        if len(set(names)) != len(names):
            raise self.fail(SETTINGS_FILE, f"a feature block is repeated ({', '.join(names)})")
        width = sum(len(b.terms) if isinstance(b, TextBlock) else b.size for b in built)
        if settings.get("n_features") != width:
            raise self.fail(SETTINGS_FILE, f"n_features {settings.get('n_features')!r} but the blocks hold {width}")
        heads = settings.get("heads")
        if not isinstance(heads, list) or "topics" not in heads or not set(heads) <= set(HEADS):
            raise self.fail(SETTINGS_FILE, "heads must list topics, and kind if the model scores it")
        return ModelState(
            topic_labels=list(labels),
            mode=settings["mode"],
            blocks=built,
            topics=self.head("topics", len(labels), width),
            kind=self.head("kind", 1, width) if "kind" in heads else None,
        )

    def block(self, entry: Any) -> TextBlock | StructureBlock:
        if not isinstance(entry, dict) or entry.get("name") not in (*TEXT_BLOCKS, "structure"):
            raise self.fail(SETTINGS_FILE, f"a block must be words, chars, title or structure, not {entry!r}")
        name = entry["name"]
        weight = entry.get("weight")
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not np.isfinite(weight):
            raise self.fail(SETTINGS_FILE, f"block {name}: weight must be a number")
        if name == "structure":
            if entry.get("features") != list(FEATURE_NAMES):
                raise self.fail(SETTINGS_FILE, "the structure block was saved with other structure features")
            size = len(FEATURE_NAMES)
            return StructureBlock(
                mean=self.array("structure.mean", (size,)),
                scale=self.nonzero(self.array("structure.scale", (size,)), "structure.scale"),
                weight=float(weight),
            )
        low_high = entry.get("ngram_range")
        if (not isinstance(low_high, list) or len(low_high) != 2 or not all(type(n) is int for n in low_high)
                or not 1 <= low_high[0] <= low_high[1] <= _MAX_NGRAM):
            raise self.fail(SETTINGS_FILE, f"block {name}: ngram_range must be two integers 1 <= low <= high <= 8")
        if not isinstance(entry.get("sublinear_tf"), bool):
            raise self.fail(SETTINGS_FILE, f"block {name}: sublinear_tf must be true or false")
        terms = self.vocabulary.get(name)
        if not isinstance(terms, list) or not all(isinstance(term, str) and term for term in terms):
            raise self.fail(VOCABULARY_FILE, f"{name} must be a list of non-empty strings")
        if entry.get("size") != len(terms) or len(set(terms)) != len(terms):
            raise self.fail(VOCABULARY_FILE, f"{name} must hold {entry.get('size')!r} different terms")
        return TextBlock(
            name=name, ngram_range=(low_high[0], low_high[1]), sublinear_tf=entry["sublinear_tf"],
            weight=float(weight), terms=terms, idf=self.array(f"{name}.idf", (len(terms),)),
        )

    def head(self, name: str, labels: int, width: int) -> LinearHead:
        return LinearHead(
            weights=self.array(f"{name}.weights", (labels, width)),
            intercepts=self.array(f"{name}.intercepts", (labels,)),
            slopes=self.nonzero(self.array(f"{name}.slopes", (labels,)), f"{name}.slopes"),
            offsets=self.array(f"{name}.offsets", (labels,)),
        )

    def array(self, key: str, shape: tuple[int, ...]) -> np.ndarray:
        array = self.arrays.get(key)
        if array is None:
            raise self.fail(ARRAYS_FILE, f"it has no array {key}")
        if array.dtype != np.float64 or array.shape != shape:
            raise self.fail(ARRAYS_FILE, f"{key} is {array.dtype} {array.shape}, expected float64 {shape}")
        if not np.isfinite(array).all():
            raise self.fail(ARRAYS_FILE, f"{key} holds values that are not finite numbers")
        return array

    def nonzero(self, array: np.ndarray, key: str) -> np.ndarray:
        if (array == 0).any():
            raise self.fail(ARRAYS_FILE, f"{key} holds zeros")
        return array


def feature_blocks(union: Any) -> list[TextBlock | StructureBlock]:
    """The blocks of a fitted :func:`model.features.build_features` union as plain state, in column order."""
    weights = union.transformer_weights or {}
    blocks: list[TextBlock | StructureBlock] = []
    for name, transformer in union.transformer_list:
        weight = float(weights.get(name, 1.0))
        if name == "structure":
            scaler = transformer.named_steps["scale"]
            blocks.append(StructureBlock(
                mean=np.asarray(scaler.mean_, dtype=np.float64), scale=np.asarray(scaler.scale_, dtype=np.float64),
                weight=weight,
            ))
            continue
        vectorizer = transformer
        expected = {"chars": char_view, "title": title_tokens}.get(name, word_tokens)
        given = vectorizer.preprocessor if name == "chars" else vectorizer.tokenizer
        analyzer = "char" if name == "chars" else "word"
        if name not in TEXT_BLOCKS or vectorizer.analyzer != analyzer or given is not expected:
            raise ArtifactError(
                f"feature block {name!r} cannot be stored: only words (word_tokens), chars (char_view) and "
                "title (title_tokens) are, as model.features.build_features makes them"
            )
        if (vectorizer.norm != "l2" or vectorizer.lowercase or not vectorizer.use_idf or vectorizer.binary
                or vectorizer.strip_accents is not None or vectorizer.stop_words is not None):
            raise ArtifactError(
                f"feature block {name!r} cannot be stored: only l2-normalised, idf-weighted, case-kept, "
                "non-binary TF-IDF without accent stripping or stop-word lists is"
            )
        vocabulary = vectorizer.vocabulary_
        terms = sorted(vocabulary, key=vocabulary.__getitem__)
        if [vocabulary[term] for term in terms] != list(range(len(terms))):
            raise ArtifactError(f"feature block {name!r}: the vocabulary's columns are not 0..n-1")
        blocks.append(TextBlock(
            name=name, ngram_range=(int(vectorizer.ngram_range[0]), int(vectorizer.ngram_range[1])),
            sublinear_tf=bool(vectorizer.sublinear_tf), weight=weight, terms=[str(t) for t in terms],
            idf=np.asarray(vectorizer.idf_, dtype=np.float64),
        ))
    return blocks


def _head_of(calibrated_models: Sequence[Any]) -> LinearHead:
    parts = [_read_calibrated(model) for model in calibrated_models]
    return LinearHead(
        weights=np.vstack([p[0] for p in parts]),
        intercepts=np.array([p[1] for p in parts], dtype=np.float64),
        slopes=np.array([p[2] for p in parts], dtype=np.float64),
        offsets=np.array([p[3] for p in parts], dtype=np.float64),
    )


def _read_calibrated(calibrated: Any) -> tuple[np.ndarray, float, float, float]:
    """Weights, intercept and sigmoid of a ``CalibratedClassifierCV(ensemble=False)``."""
    models = getattr(calibrated, "calibrated_classifiers_", None)
    if models is None or len(models) != 1:
        raise ArtifactError(
            "a head cannot be stored: expected a calibrated linear classifier fitted with ensemble=False"
        )
    inner = models[0]
    sigmoid = inner.calibrators[0]
    if not hasattr(sigmoid, "a_") or not hasattr(sigmoid, "b_"):
        raise ArtifactError(
            f"a head cannot be stored: {type(sigmoid).__name__} calibration is not stored as plain data; "
            "train with the sigmoid calibration (params['calibration']['method'] = 'sigmoid')"
        )
    estimator = inner.estimator
    if not hasattr(estimator, "coef_"):
        raise ArtifactError(f"a head cannot be stored: {type(estimator).__name__} is not a linear classifier")
    return (
        np.asarray(estimator.coef_, dtype=np.float64).ravel(),
        float(np.ravel(estimator.intercept_)[0]),
        float(sigmoid.a_),
        float(sigmoid.b_),
    )


def _json_bytes(value: Any, indent: int | None) -> bytes:
    return json.dumps(value, ensure_ascii=False, indent=indent, allow_nan=False).encode("utf-8")


def _json_object(files: Mapping[str, bytes], name: str, where: str) -> dict[str, Any]:
    try:
        value = json.loads(files[name].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ArtifactError(f"{where}/{name} is not valid JSON: {describe_error(exc)}") from exc
    if not isinstance(value, dict):
        raise ArtifactError(f"{where}/{name} is not a valid xinxi model file: a JSON object was expected")
    return value


def _npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """An ``.npz`` archive that ``np.load`` reads, written with fixed timestamps and in a fixed order.

    ``np.savez`` stamps each member with the current time, so the same arrays
    would give different bytes (and checksums) on every save.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for key in sorted(arrays):
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.ascontiguousarray(arrays[key]), allow_pickle=False)
    return buffer.getvalue()


def _npz_arrays(files: Mapping[str, bytes], where: str) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` file, read with ``allow_pickle=False``: an object array is refused, never run."""
    try:
        loaded = np.load(io.BytesIO(files[ARRAYS_FILE]), allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError("a single array, not an archive of arrays")
        with loaded as archive:
            return {key: archive[key] for key in archive.files}
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise ArtifactError(f"{where}/{ARRAYS_FILE} is not a valid numpy archive: {describe_error(exc)}") from exc
