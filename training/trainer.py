"""Fitting a model version from labelled items.

``fit_model`` runs K-fold cross-validation first: the out-of-fold
probabilities choose each topic's threshold and give the metrics recorded in
the manifest. It then fits the features and both heads on all the data. The
same items and seed give the same model, to the last digit.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.pipeline import Pipeline

from model.artifact import new_version_id, save_version
from model.labels import KIND_NAMES
from model.registry import ModelRegistry
from model.text import DEFAULT_ENGINE, segmenter_info, title_tokens, use_engine
from training.data import Item, load_items
from training.dataset import prepare, stratified_folds
from training.errors import TrainingError
from training.evaluate import kind_metrics, topic_metrics
from training.pipeline import build_heads, fit_head, merge_params

MIN_EXAMPLES = 8
"""A label needs at least this many positive (and negative) items to be learned."""

Progress = Callable[[str, int, int], None]


def quiet(step: str, done: int, total: int) -> None:
    """A progress callback that shows nothing."""
    return None


def check_counts(matrix: np.ndarray, labels: Sequence[str], minimum: int) -> None:
    """Refuse labels with fewer than ``minimum`` positive or negative items."""
    problems = []
    for j, label in enumerate(labels):
        positives = int(matrix[:, j].sum())
        if positives < minimum:
            problems.append(f"{label} has {positives} items (at least {minimum} needed)")
        elif len(matrix) - positives < minimum and len(labels) > 1:
            problems.append(f"{label} is on {positives} of {len(matrix)} items: too few without it")
    if problems:
        raise TrainingError("too few examples: " + "; ".join(problems))


def _f1_at(truth: np.ndarray, scores: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """F1 of ``scores >= t`` against the 0/1 ``truth`` for every ``t`` of ``grid``."""
    predicted = scores[None, :] >= grid[:, None]
    positives = truth == 1
    tp = (predicted & positives[None, :]).sum(axis=1).astype(np.float64)
    denominator = predicted.sum(axis=1) + positives.sum()
    return np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)


def choose_thresholds(
    truth: np.ndarray,
    probabilities: np.ndarray,
    groups: Sequence[str] | np.ndarray | None = None,
    min_positives: int = 10,
) -> np.ndarray:
    """Per label, the threshold on out-of-fold probabilities that maximises F1.

    With ``groups`` (each item's source), the threshold maximises the mean F1
    over the groups holding at least ``min_positives`` of that label, each group
    counted once, as the by-source evaluation counts each collection once;
    a label that no group holds so often falls back to the pooled F1. Without
    them, the F1 of all items pooled. Ties are broken towards 0.5, so that a
    flat optimum does not push the threshold to an extreme.
    """
    grid = np.round(np.arange(0.05, 0.951, 0.01), 2)
    thresholds = np.full(truth.shape[1], 0.5)
    names = np.asarray(groups) if groups is not None else np.array([])
    masks = [names == g for g in sorted(set(names.tolist()))]
    for j in range(truth.shape[1]):
        members = [m for m in masks if truth[m, j].sum() >= min_positives]
        if members:
            f1 = np.mean([_f1_at(truth[m, j], probabilities[m, j], grid) for m in members], axis=0)
        else:
            f1 = _f1_at(truth[:, j], probabilities[:, j], grid)
        # The highest F1 (to 6 places), then the threshold nearest 0.5.
        best = max(range(len(grid)), key=lambda i: (round(float(f1[i]), 6), -abs(grid[i] - 0.5)))
        thresholds[j] = grid[best]
    return thresholds


def data_fingerprint(items: Sequence[Item]) -> dict[str, Any]:
    """SHA-256 and size of the training data as the model saw it."""
    digest = hashlib.sha256()
    size = 0
    for item in items:
        record = json.dumps(
            [item.id, item.title, item.text, item.topics, item.kind], ensure_ascii=False
        ).encode("utf-8")
        digest.update(record + b"\n")
        size += len(record) + 1
    return {"sha256": digest.hexdigest(), "bytes": size, "items": len(items)}


def source_weights(sources: Sequence[str], balance: float) -> np.ndarray | None:
    """Per item ``n_source ** -balance``, scaled to mean 1; None when ``balance`` is 0 (no weights)."""
    if not balance or not sources:
        return None
    counts = Counter(sources)
    weights = np.array([counts[s] ** -float(balance) for s in sources])
    return weights * (len(weights) / weights.sum())


def titles_usable(documents: Sequence[str], min_df: int) -> bool:
    """Whether some title word occurs in at least ``min_df`` documents' titles (else the title block is empty)."""
    counts: Counter[str] = Counter()
    for document in documents:
        counts.update(set(title_tokens(document)))
    return any(count >= min_df for count in counts.values())


def _fit_features(features: Any, documents: list[str], extra: list[str]) -> Any:
    """Fit the features on ``documents`` and ``extra`` (unlabelled) and return the matrix of ``documents``."""
    if not extra:
        return features.fit_transform(documents)
    features.fit(documents + extra)
    return features.transform(documents)


def _cv_splits(data: Any, how: str, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified K folds, or (``how="source"``, with two or more sources) one source held out at a time."""
    if how == "source" and len(set(data.sources or [])) >= 2:
        sources = np.asarray(data.sources)
        return [(np.flatnonzero(sources != s), np.flatnonzero(sources == s)) for s in sorted(set(data.sources))]
    if how not in ("kfold", "source"):
        raise TrainingError(f"unknown threshold split {how!r}; use kfold or source")
    return stratified_folds(data.items, data.truth, folds, seed, data.multiclass)


def fit_model(
    items: Sequence[Item],
    *,
    seed: int = 0,
    folds: int = 5,
    labels: Sequence[str] | str | None = None,
    params: dict[str, Any] | None = None,
    progress: Progress = quiet,
    min_examples: int = MIN_EXAMPLES,
    engine: str = DEFAULT_ENGINE,
    unlabelled: Sequence[str] = (),
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Cross-validate, then fit, a model on labelled items.

    Parameters
    ----------
    items : sequence of Item
        Items with topics (and, to train the quality score, kind).
    seed : int
        Seeds the folds and the estimators.
    folds : int
        Folds of the cross-validation that picks thresholds and measures metrics.
    labels : sequence of str, "auto" or None
        Topic label set; None is ANNOTATION.md's, "auto" takes it from the data.
    params : dict, optional
        Hyperparameter overrides, by section (see :data:`training.pipeline.DEFAULT_PARAMS`).
    progress : callable
        Called as ``progress(step, done, total)``.
    min_examples : int
        Fewest positive items a label needs.
    engine : str
        Segmentation engine (recorded in the manifest; prediction uses the same).
    unlabelled : sequence of str
        Documents without labels that the features are fitted on too (vocabulary
        and IDF), so that the weights of words reflect more text than the labelled items.

    The ``data`` section of ``params`` chooses how the out-of-fold
    probabilities are made (``threshold_split``: stratified folds, or one
    source held out at a time) and weighs items by their source
    (``source_balance``).

    Returns
    -------
    bundle, manifest
        What :func:`model.artifact.save_version` writes.
    """
    use_engine(engine)
    if folds < 2:
        raise TrainingError("--folds must be at least 2")
    data = prepare(items, labels=labels)
    chosen, truth, multiclass = data.labels, data.truth, data.multiclass
    params = merge_params(params)
    check_counts(truth, chosen, min_examples)
    with_kind = [i for i, item in enumerate(items) if item.kind in KIND_NAMES]
    if with_kind and len(with_kind) < len(items):
        first = next(item for item in items if item.kind not in KIND_NAMES)
        raise TrainingError(
            f"kind is missing on {len(items) - len(with_kind)} of {len(items)} items (first: row {first.row}, "
            f"id {first.id}); give every item news/analysis, or none, to train topics only"
        )
    train_kind = bool(with_kind) and len({items[i].kind for i in with_kind}) == 2
    if with_kind and not train_kind:
        raise TrainingError("every item has the same kind: the quality score needs both news and analysis items")
    is_analysis, documents = data.is_analysis, data.documents
    if params["features"].get("title_weight") and not titles_usable(documents, params["features"]["min_df"]):
        # Data without titles (a text<TAB>label file, one-line documents): no title block; the manifest says so.
        params["features"]["title_weight"] = 0.0
    weights = source_weights(data.sources or [], params["data"]["source_balance"])
    extra = list(unlabelled)

    objective = params["data"]["threshold_objective"]
    if objective not in ("pooled", "mean-over-sources"):
        raise TrainingError(f"unknown threshold objective {objective!r}; use pooled or mean-over-sources")
    splits = _cv_splits(data, params["data"]["threshold_split"], folds, seed)
    folds = len(splits)
    oof_topics = np.zeros(truth.shape, dtype=np.float64)
    oof_kind = np.zeros(len(items), dtype=np.float64)
    total = folds + 1
    for number, (train, test) in enumerate(splits, 1):
        progress(f"cross-validation fold {number}/{folds}", number - 1, total)
        features, topics, kind = build_heads(params, seed)
        matrix = _fit_features(features, [documents[i] for i in train], extra)
        held_out = features.transform([documents[i] for i in test])
        fold_weights = None if weights is None else weights[train]
        fit_head(topics, matrix, truth[train], fold_weights)
        oof_topics[test] = topics.predict_proba(held_out)
        if train_kind:
            fit_head(kind, matrix, is_analysis[train], fold_weights)
            oof_kind[test] = kind.predict_proba(held_out)[:, 1]

    if multiclass:
        thresholds = np.zeros(len(chosen))
        predicted = np.zeros_like(truth)
        predicted[np.arange(len(truth)), np.argmax(oof_topics, axis=1)] = 1
    else:
        groups = np.asarray(data.sources) if objective == "mean-over-sources" and data.sources else None
        thresholds = choose_thresholds(truth, oof_topics, groups)
        # The metrics must not use thresholds tuned on the items they score: each
        # fold is cut at thresholds chosen on the other folds' out-of-fold scores.
        predicted = np.zeros_like(truth)
        for _, test in splits:
            others = np.setdiff1d(np.arange(len(items)), test)
            fold_groups = None if groups is None else groups[others]
            fold_thresholds = choose_thresholds(truth[others], oof_topics[others], fold_groups)
            predicted[test] = (oof_topics[test] >= fold_thresholds).astype(np.int8)
    metrics: dict[str, Any] = {
        "folds": folds,
        "split": params["data"]["threshold_split"],
        "thresholds": "each fold cut at thresholds chosen on the other folds' out-of-fold probabilities",
        "topics": topic_metrics(truth, predicted, chosen, oof_topics),
    }
    if train_kind:
        metrics["kind"] = kind_metrics(is_analysis, oof_kind)

    progress("fitting the final model on all items", folds, total)
    features, topics, kind = build_heads(params, seed)
    matrix = _fit_features(features, documents, extra)
    fit_head(topics, matrix, truth, weights)
    bundle: dict[str, Any] = {
        "topics": Pipeline([("features", features), ("classifier", topics)]),
        "kind": None,
        "topic_labels": chosen,
        "mode": "multiclass" if multiclass else "multilabel",
    }
    if train_kind:
        fit_head(kind, matrix, is_analysis, weights)
        bundle["kind"] = Pipeline([("features", features), ("classifier", kind)])
    progress("done", total, total)

    manifest = {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "labels": {"topics": chosen, "kinds": list(KIND_NAMES) if train_kind else []},
        "mode": bundle["mode"],
        # Stored here only: the manifest is JSON, and the Predictor reads them from it.
        "thresholds": dict(zip(chosen, [round(float(t), 4) for t in thresholds], strict=True)),
        "metrics": {"cross_validation": metrics},
        "training_data": {**data_fingerprint(items), "by_source": dict(Counter(data.sources or [])),
                          "unlabelled_documents": len(extra)},
        "seed": seed,
        "hyperparameters": params,
        "segmenter": segmenter_info(),
        "vocabulary": {name: len(t.vocabulary_) for name, t in features.transformer_list if hasattr(t, "vocabulary_")},
    }
    return bundle, manifest


def train_version(
    items: Sequence[Item],
    *,
    registry: ModelRegistry | None = None,
    out: Path | None = None,
    activate: bool = True,
    data_source: str | None = None,
    **fit_options: Any,
) -> Path:
    """Fit a model and save it, into ``out`` or as a new version of ``registry``.

    With a registry, the new version is activated when ``activate`` is true.
    """
    bundle, manifest = fit_model(items, **fit_options)
    if data_source:
        manifest["training_data"]["source"] = data_source
    if out is not None:
        directory = Path(out)
        manifest["version"] = directory.name
        return save_version(bundle, manifest, directory)
    if registry is None:
        raise ValueError("give a registry or an output directory")
    version = new_version_id()
    manifest["version"] = version
    directory = registry.save(bundle, manifest, version)
    if activate:
        registry.activate(version, why=f"trained on {data_source}" if data_source else None, action="train")
    return directory


def ensure_active_model(
    registry: ModelRegistry, data: Path | Sequence[Path], progress: Progress = quiet, **fit_options: Any
) -> Path:
    """The active model's directory, training the default one from ``data`` if there is none.

    ``data`` is a file or directory of labelled items, or several of them
    (the default model: the seed corpus and the real items). A lock file in
    the registry makes concurrent callers (several service workers starting
    at once) wait for one training instead of each running their own.
    """
    if registry.active_id() is not None:
        return registry.active_path()
    registry.models.mkdir(parents=True, exist_ok=True)
    with (registry.models / ".train.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if registry.active_id() is not None:
            return registry.active_path()
        paths = [Path(data)] if isinstance(data, (str, Path)) else [Path(p) for p in data]
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise TrainingError(
                f"no model yet and no seed corpus at {', '.join(missing)} to train one: run xinxi from a source "
                "checkout, or train on your own labelled items with `xinxi train --data FILE`"
            )
        items, _ = load_items(paths[0] if len(paths) == 1 else paths, require_labels=True)
        source = ", ".join(str(p) for p in paths)
        return train_version(items, registry=registry, data_source=source, progress=progress, **fit_options)
