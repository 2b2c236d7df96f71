"""Diagnostics of a model on labelled items: calibration and error analysis.

Calibration asks whether a probability of 0.8 is right eight times in ten:
the reliability table puts the predicted probabilities in equal-width bins
and sets the observed frequency of the label beside each bin's mean
prediction; the Brier score and the expected calibration error (ECE) sum it
up. Error analysis lists the mistakes the model was surest of, with the
terms that drove them, and counts which topics are taken for which.

Both work from a :class:`model.Predictor`'s output, so they describe the
product's own numbers: run them on a held-out file, or on the out-of-fold
predictions of :func:`training.compare.compare`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import brier_score_loss

from model.labels import KIND_NAMES, positive_kind_vector, topic_matrix
from model.predictor import Prediction
from training.data import Item

NONE = "(none)"
"""Stands for 'no topic' in the confusion summary."""


def reliability_table(truth: np.ndarray, probabilities: np.ndarray, bins: int = 10) -> list[dict[str, Any]]:
    """Equal-width probability bins with their count, mean prediction and observed frequency.

    The last bin includes 1.0; the counts add up to the number of items.
    Empty bins have ``None`` for both means.
    """
    truth = np.asarray(truth, dtype=np.float64).ravel()
    probabilities = np.clip(np.asarray(probabilities, dtype=np.float64).ravel(), 0.0, 1.0)
    index = np.minimum((probabilities * bins).astype(int), bins - 1)
    rows = []
    for b in range(bins):
        inside = index == b
        count = int(inside.sum())
        rows.append(
            {
                "lower": round(b / bins, 4),
                "upper": round((b + 1) / bins, 4),
                "count": count,
                "mean_predicted": round(float(probabilities[inside].mean()), 4) if count else None,
                "observed": round(float(truth[inside].mean()), 4) if count else None,
            }
        )
    return rows


def expected_calibration_error(table: Sequence[dict[str, Any]]) -> float:
    """Count-weighted mean gap between predicted and observed frequency over the bins."""
    total = sum(row["count"] for row in table)
    if not total:
        return 0.0
    gap = sum(row["count"] * abs(row["mean_predicted"] - row["observed"]) for row in table if row["count"])
    return round(gap / total, 4)


def _calibration_entry(truth: np.ndarray, probabilities: np.ndarray, bins: int) -> dict[str, Any]:
    table = reliability_table(truth, probabilities, bins)
    return {
        "brier": round(float(brier_score_loss(truth, np.clip(probabilities, 0.0, 1.0))), 4),
        "ece": expected_calibration_error(table),
        "base_rate": round(float(np.mean(truth)), 4),
        "bins": table,
    }


def calibration_report(
    truth: np.ndarray,
    probabilities: np.ndarray,
    labels: Sequence[str],
    *,
    is_analysis: np.ndarray | None = None,
    analysis: np.ndarray | None = None,
    bins: int = 10,
) -> dict[str, Any]:
    """Reliability table, Brier score and ECE per topic, and for kind when given.

    Parameters
    ----------
    truth, probabilities : ndarray
        Items x labels: 0/1 truth and predicted probabilities.
    labels : sequence of str
        Topic names, in column order.
    is_analysis, analysis : ndarray, optional
        0/1 truth of ``analysis`` and its predicted probability.
    bins : int
        Number of equal-width probability bins.
    """
    report: dict[str, Any] = {
        "bins": bins,
        "topics": {label: _calibration_entry(truth[:, j], probabilities[:, j], bins) for j, label in enumerate(labels)},
        "kind": None,
    }
    if is_analysis is not None and analysis is not None:
        report["kind"] = _calibration_entry(np.asarray(is_analysis), np.asarray(analysis), bins)
    return report


def calibration_from_predictions(
    items: Sequence[Item], predictions: Sequence[Prediction], labels: Sequence[str], bins: int = 10
) -> dict[str, Any]:
    """:func:`calibration_report` of a Predictor's output against the items' labels."""
    truth = topic_matrix([item.topics for item in items], labels)
    probabilities = np.array([[t.probability for t in p.topics] for p in predictions])
    pairs = [(item.kind, p.kind.analysis_probability) for item, p in zip(items, predictions, strict=True)
             if item.kind in KIND_NAMES and p.kind is not None]
    is_analysis = positive_kind_vector(k for k, _ in pairs) if pairs else None
    analysis = np.array([a for _, a in pairs]) if pairs else None
    return calibration_report(truth, probabilities, labels, is_analysis=is_analysis, analysis=analysis, bins=bins)


def _short(item: Item, limit: int = 40) -> str:
    text = (item.title or item.text).replace("\n", " ").strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def error_analysis(
    items: Sequence[Item], predictions: Sequence[Prediction], labels: Sequence[str], per_label: int = 5
) -> dict[str, Any]:
    """The most confident mistakes per topic (and for kind), and a topic confusion summary.

    For each topic, false positives are ranked by their probability (highest
    first) and false negatives by theirs (lowest first). Each mistake carries
    the terms that pushed the item towards the topic and the topics predicted
    instead, with theirs. The confusion summary counts, over items, each pair
    (true topic that was missed, topic predicted that was not true), with
    ``(none)`` standing for no topic on either side.
    """
    truth = topic_matrix([item.topics for item in items], labels)
    selected = np.array([[int(t.selected) for t in p.topics] for p in predictions], dtype=np.int8)
    probabilities = np.array([[t.probability for t in p.topics] for p in predictions])
    mistakes: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for j, label in enumerate(labels):
        entries: dict[str, list[dict[str, Any]]] = {}
        for kind_of_error, mask, order in (
            ("false_positives", (selected[:, j] == 1) & (truth[:, j] == 0), -1),
            ("false_negatives", (selected[:, j] == 0) & (truth[:, j] == 1), 1),
        ):
            rows = np.flatnonzero(mask)
            rows = rows[np.argsort(order * probabilities[rows, j], kind="stable")][:per_label]
            entries[kind_of_error] = [_mistake(items[int(i)], predictions[int(i)], labels, j) for i in rows]
        entries["counts"] = {  # type: ignore[assignment]
            "false_positives": int(((selected[:, j] == 1) & (truth[:, j] == 0)).sum()),
            "false_negatives": int(((selected[:, j] == 0) & (truth[:, j] == 1)).sum()),
            "support": int(truth[:, j].sum()),
        }
        mistakes[label] = entries
    report: dict[str, Any] = {
        "items": len(items),
        "topics": mistakes,
        "confusion": confusion_summary(truth, selected, labels),
        "kind": _kind_mistakes(items, predictions, per_label),
    }
    return report


def _mistake(item: Item, prediction: Prediction, labels: Sequence[str], j: int) -> dict[str, Any]:
    topic = prediction.topics[j]
    return {
        "id": item.id,
        "title": _short(item),
        "probability": topic.probability,
        "true": list(item.topics or []),
        "predicted": [t.label for t in prediction.topics if t.selected],
        "terms": list(topic.terms),
        "instead": {t.label: list(t.terms[:3]) for t in prediction.topics if t.selected and t.label != labels[j]},
    }


def _kind_mistakes(items: Sequence[Item], predictions: Sequence[Prediction], limit: int) -> dict[str, Any] | None:
    wrong = [
        (item, p)
        for item, p in zip(items, predictions, strict=True)
        if p.kind is not None and item.kind in KIND_NAMES and p.kind.label != item.kind
    ]
    if not any(p.kind is not None for p in predictions):
        return None
    wrong.sort(key=lambda pair: -pair[1].kind.probability if pair[1].kind else 0.0)
    return {
        "errors": len(wrong),
        "most_confident": [
            {
                "id": item.id,
                "title": _short(item),
                "true": item.kind,
                "predicted": p.kind.label,
                "probability": p.kind.probability,
                "terms": list(p.kind.terms),
            }
            for item, p in wrong[:limit]
            if p.kind is not None
        ],
    }


def confusion_summary(truth: np.ndarray, selected: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """Which topics are taken for which.

    ``pairs[t][p]`` counts the items where topic ``t`` was true but missed and
    topic ``p`` was predicted but not true. A missed topic with nothing wrong
    predicted counts under ``p = "(none)"``; a wrong topic on an item whose
    true topics were all found counts under ``t = "(none)"``. For single-label
    data this is the usual confusion matrix without its diagonal.
    """
    names = [*labels, NONE]
    pairs = {t: dict.fromkeys(names, 0) for t in names}
    for row_truth, row_selected in zip(truth, selected, strict=True):
        missed = [labels[int(j)] for j in np.flatnonzero((row_truth == 1) & (row_selected == 0))]
        extra = [labels[int(j)] for j in np.flatnonzero((row_truth == 0) & (row_selected == 1))]
        for t in missed or [NONE]:
            for p in extra or [NONE]:
                if t != NONE or p != NONE:
                    pairs[t][p] += 1
    ranked = sorted(
        ((t, p, n) for t, row in pairs.items() for p, n in row.items() if n),
        key=lambda entry: (-entry[2], entry[0], entry[1]),
    )
    top = [{"true": t, "predicted": p, "items": n} for t, p, n in ranked[:10]]
    return {"labels": names, "pairs": pairs, "top": top}


def diagnose(
    items: Sequence[Item], predictions: Sequence[Prediction], labels: Sequence[str], errors_per_label: int = 0
) -> dict[str, Any]:
    """Calibration of a Predictor's output on labelled items and, with ``errors_per_label``, its error analysis.

    Returns
    -------
    dict
        ``{"calibration": ...}`` (:func:`calibration_from_predictions`), with
        ``"errors"`` (:func:`error_analysis`) when ``errors_per_label`` > 0.
    """
    report: dict[str, Any] = {"calibration": calibration_from_predictions(items, predictions, labels)}
    if errors_per_label > 0:
        report["errors"] = error_analysis(items, predictions, labels, errors_per_label)
    return report
