"""Metrics for topics and kind, from label matrices or from a Predictor's output."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    f1_score,
    precision_recall_fscore_support,
    roc_auc_score,
)

from model.labels import KIND_NAMES, positive_kind_vector, topic_matrix
from model.predictor import Prediction, Predictor
from training.data import Item
from training.errors import TrainingError


def _safe_auc(truth: np.ndarray, scores: np.ndarray) -> float | None:
    return float(roc_auc_score(truth, scores)) if 0 < truth.sum() < len(truth) else None


def topic_metrics(
    truth: np.ndarray, predicted: np.ndarray, labels: Sequence[str], probabilities: np.ndarray | None = None
) -> dict[str, Any]:
    """Per-label precision/recall/F1 (and ROC-AUC, Brier), micro and macro F1, subset accuracy."""
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, average=None, labels=list(range(len(labels))), zero_division=0
    )
    per_label = {}
    for j, label in enumerate(labels):
        entry: dict[str, Any] = {
            "precision": round(float(precision[j]), 4),
            "recall": round(float(recall[j]), 4),
            "f1": round(float(f1[j]), 4),
            "support": int(support[j]),
        }
        if probabilities is not None:
            auc = _safe_auc(truth[:, j], probabilities[:, j])
            entry["roc_auc"] = None if auc is None else round(auc, 4)
            entry["brier"] = round(float(brier_score_loss(truth[:, j], probabilities[:, j])), 4)
        per_label[label] = entry
    none_true = truth.sum(axis=1) == 0
    none_pred = predicted.sum(axis=1) == 0
    return {
        "per_label": per_label,
        "micro_f1": round(float(f1_score(truth, predicted, average="micro", zero_division=0)), 4),
        "macro_f1": round(float(np.mean(f1)), 4),
        "subset_accuracy": round(float(np.mean(np.all(truth == predicted, axis=1))), 4),
        "no_topic_f1": round(float(f1_score(none_true, none_pred, zero_division=0)), 4),
        "items": int(len(truth)),
    }


def kind_metrics(is_analysis: np.ndarray, analysis_probability: np.ndarray) -> dict[str, Any]:
    """Accuracy, F1 of ``analysis``, ROC-AUC and Brier score of the kind head."""
    predicted = (analysis_probability >= 0.5).astype(int)
    auc = _safe_auc(is_analysis, analysis_probability)
    return {
        "accuracy": round(float(accuracy_score(is_analysis, predicted)), 4),
        "f1": round(float(f1_score(is_analysis, predicted, zero_division=0)), 4),
        "roc_auc": None if auc is None else round(auc, 4),
        "brier": round(float(brier_score_loss(is_analysis, analysis_probability)), 4),
        "items": int(len(is_analysis)),
    }


def evaluate_predictions(
    items: Sequence[Item], predictions: Sequence[Prediction], labels: Sequence[str]
) -> dict[str, Any]:
    """Metrics of a Predictor's output against the items' labels."""
    truth = topic_matrix([item.topics for item in items], labels)
    predicted = np.array([[int(t.selected) for t in p.topics] for p in predictions], dtype=np.int8)
    probabilities = np.array([[t.probability for t in p.topics] for p in predictions])
    report: dict[str, Any] = {"topics": topic_metrics(truth, predicted, labels, probabilities)}
    kinds = [(item.kind, p) for item, p in zip(items, predictions, strict=True) if item.kind in KIND_NAMES and p.kind]
    if kinds:
        report["kind"] = kind_metrics(
            positive_kind_vector(k for k, _ in kinds),
            np.array([p.kind.analysis_probability for _, p in kinds if p.kind is not None]),
        )
    return report


def score_items(
    predictor: Predictor, items: Sequence[Item], progress: Callable[[int, int], None] | None = None
) -> list[Prediction]:
    """The predictor's results for ``items``, in order, scored in batches; ``progress(done, total)`` after each."""
    return predictor.predict_batched([item.as_input() for item in items], progress=progress)


def evaluate_model(
    predictor: Predictor, items: Sequence[Item], predictions: Sequence[Prediction] | None = None
) -> dict[str, Any]:
    """Compare ``predictor``'s results on ``items`` (scored here unless given) with their labels.

    Raises
    ------
    TrainingError
        If the items carry labels the model does not know.
    """
    unknown = sorted({t for item in items for t in item.topics or []} - set(predictor.topic_labels))
    if unknown:
        raise TrainingError(
            f"the data has labels the model does not know: {', '.join(unknown)}; "
            f"the model's labels are {', '.join(predictor.topic_labels)}"
        )
    if predictions is None:
        predictions = score_items(predictor, items)
    report = evaluate_predictions(items, predictions, predictor.topic_labels)
    report["model_version"] = predictor.version
    return report
