"""Side-by-side comparison of xinxi with the baselines: every method trained and tested on the same splits.

The data and its splits are prepared by :mod:`training.dataset`, the methods
live in :mod:`training.baselines` and the reports are rendered by
:mod:`training.report`. Metrics are computed on the pooled out-of-fold
predictions, with :func:`training.evaluate.topic_metrics` and
:func:`training.evaluate.kind_metrics`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from joblib import Parallel, delayed

from model.predictor import Prediction
from training.baselines import METHODS, Method, Scores, build_method
from training.dataset import Dataset, describe_data, held_out_sources, make_splits
from training.diagnostics import calibration_report, error_analysis
from training.evaluate import kind_metrics, topic_metrics
from training.trainer import Progress, quiet


@dataclass
class MethodRun:
    """One method's out-of-fold results on a dataset."""

    name: str
    skipped: str | None = None
    probabilities: np.ndarray | None = None
    selected: np.ndarray | None = None
    analysis: np.ndarray | None = None
    predictions: list[Prediction | None] = field(default_factory=list)
    fit_seconds: list[float] = field(default_factory=list)
    predict_seconds: float = 0.0
    fold_macro_f1: list[float] = field(default_factory=list)
    tested: np.ndarray | None = None  # items that some split held out (all, except with a test set)

    def summary(self, data: Dataset, only: np.ndarray | None = None) -> dict[str, Any]:
        """The JSON entry of this method: metrics on the pooled out-of-fold predictions (of ``only`` if given)."""
        if self.skipped is not None:
            return {"name": self.name, "skipped": self.skipped}
        assert self.probabilities is not None and self.selected is not None and self.tested is not None
        tested = self.tested if only is None else self.tested & only
        topics = topic_metrics(data.truth[tested], self.selected[tested], data.labels, self.probabilities[tested])
        entry: dict[str, Any] = {
            "name": self.name,
            "macro_f1": topics["macro_f1"],
            "micro_f1": topics["micro_f1"],
            "subset_accuracy": topics["subset_accuracy"],
            "no_topic_f1": None if data.multiclass else topics["no_topic_f1"],
            "fold_macro_f1_mean": round(float(np.mean(self.fold_macro_f1)), 4),
            "fold_macro_f1_std": round(float(np.std(self.fold_macro_f1)), 4),
            "per_label": topics["per_label"],
            "kind": None,
            "kind_accuracy": None,
            "kind_roc_auc": None,
            "fit_seconds": round(float(np.mean(self.fit_seconds)), 3),
            "items_per_second": round(int(tested.sum()) / self.predict_seconds, 1) if self.predict_seconds else None,
        }
        if self.analysis is not None:
            kind = kind_metrics(data.is_analysis[tested], self.analysis[tested])
            entry.update(kind=kind, kind_accuracy=kind["accuracy"], kind_roc_auc=kind["roc_auc"])
        return entry


def _fit_and_score(method: Method, data: Dataset, train: np.ndarray, test: np.ndarray) -> tuple[float, float, Scores]:
    """Fit ``method`` on ``train`` and score ``test``: seconds fitting, seconds scoring, the scores."""
    started = time.perf_counter()
    method.fit(data, train)
    fitted = time.perf_counter()
    scores = method.score(data, test)
    return fitted - started, time.perf_counter() - fitted, scores


def run_methods(
    data: Dataset,
    splits: Sequence[tuple[np.ndarray, np.ndarray]],
    methods: Sequence[Method],
    progress: Progress = quiet,
    n_jobs: int = 1,
) -> list[MethodRun]:
    """Train and score every method on every split; collect out-of-fold results.

    With ``n_jobs`` above 1 the splits of a method run in that many worker
    processes (each gets its own copy of the method); the results are the
    same as in one process, since every fit is seeded.
    """
    runs = []
    total = len(methods) * len(splits)
    step = 0
    for method in methods:
        run = MethodRun(name=method.name, skipped=method.available())
        runs.append(run)
        if run.skipped is not None:
            step += len(splits)
            continue
        run.probabilities = np.zeros(data.truth.shape)
        run.selected = np.zeros(data.truth.shape, dtype=np.int8)
        run.analysis = np.zeros(len(data)) if data.has_kind else None
        run.predictions = [None] * len(data)
        run.tested = np.zeros(len(data), dtype=bool)
        progress(f"{method.name}: {len(splits)} splits", step, total)
        if n_jobs > 1:
            results: Any = Parallel(n_jobs=n_jobs, return_as="generator")(
                delayed(_fit_and_score)(method, data, train, test) for train, test in splits
            )
        else:
            results = (_fit_and_score(method, data, train, test) for train, test in splits)
        for number, ((_, test), (fit_seconds, predict_seconds, scores)) in enumerate(
            zip(splits, results, strict=True), 1
        ):
            run.tested[test] = True
            run.fit_seconds.append(fit_seconds)
            run.predict_seconds += predict_seconds
            run.probabilities[test] = scores.probabilities
            run.selected[test] = scores.selected
            if run.analysis is not None:
                if scores.analysis is None:
                    run.analysis = None
                else:
                    run.analysis[test] = scores.analysis
            if scores.predictions is not None:
                for i, prediction in zip(test, scores.predictions, strict=True):
                    run.predictions[i] = prediction
            fold = topic_metrics(data.truth[test], scores.selected, data.labels)
            run.fold_macro_f1.append(fold["macro_f1"])
            step += 1
            progress(f"{method.name} split {number}/{len(splits)}", step, total)
    progress("done", total, total)
    return runs


def compare(
    data: Dataset,
    *,
    strategy: str = "kfold",
    folds: int = 5,
    seed: int = 0,
    methods: Sequence[str] = METHODS,
    params: dict[str, Any] | None = None,
    inner_folds: int = 3,
    progress: Progress = quiet,
    n_jobs: int = 1,
) -> tuple[dict[str, Any], list[MethodRun]]:
    """Compare ``methods`` on ``data`` with one split strategy.

    Returns
    -------
    report, runs
        ``report`` is JSON-ready: ``{"data": ..., "split": ..., "methods": [{"name", "macro_f1", ...}]}``;
        ``runs`` keep the out-of-fold scores (and xinxi's predictions) for diagnostics.
    """
    splits = make_splits(data, strategy, folds, seed)
    built = [build_method(name, seed=seed, params=params, inner_folds=inner_folds) for name in methods]
    runs = run_methods(data, splits, built, progress, n_jobs=n_jobs)
    report: dict[str, Any] = {
        "data": describe_data(data),
        "split": {
            "strategy": strategy,
            "folds": len(splits),
            "seed": seed,
            "held_out": sorted(set(data.groups)) if strategy in ("files", "test") and data.groups else None,
        },
        "methods": [run.summary(data) for run in runs],
    }
    if strategy == "sources":
        report["split"]["held_out"] = held_out_sources(data)
        sources = np.asarray(data.sources)
        report["per_source"] = {
            source: [_with_present_labels(run.summary(data, sources == source)) for run in runs]
            for source in held_out_sources(data)
        }
        report["mean_over_sources"] = source_means(report["per_source"])
    return report, runs


MIN_LABEL_POSITIVES = 10
"""A label counts in a held-out source's macro F1 only with this many positives there.

A collection need not contain every topic (epidemic bulletins hold only
``emergency``), and an F1 over two or three positives is noise; such cells
are still shown, with their counts, but not averaged.
"""


def _with_present_labels(entry: dict[str, Any]) -> dict[str, Any]:
    """Add the macro F1 over the labels with :data:`MIN_LABEL_POSITIVES` positives in this source."""
    if "skipped" in entry:
        return entry
    present = [label for label, v in entry["per_label"].items() if v["support"] >= MIN_LABEL_POSITIVES]
    entry["labels_averaged"] = present
    entry["macro_f1_present"] = (
        round(float(np.mean([entry["per_label"][label]["f1"] for label in present])), 4) if present else None
    )
    return entry


def source_means(per_source: dict[str, list[dict[str, Any]]], positives: int = 30) -> list[dict[str, Any]]:
    """Per method, the unweighted mean over held-out sources of macro F1, kind accuracy and each label's F1.

    Each source counts once, whatever its size: the question is how the model
    holds on a collection it has never seen, and every collection is one such.
    Macro F1 and a label's mean F1 use only the sources where the label has
    :data:`MIN_LABEL_POSITIVES` positives; ``lowest_label_f1`` is the lowest
    F1 of any label in any source where it has ``positives`` positives.
    """
    names = [entry["name"] for entry in next(iter(per_source.values()))]
    means = []
    for position, name in enumerate(names):
        entries = [entries[position] for entries in per_source.values() if "skipped" not in entries[position]]
        if not entries:
            continue
        labels = list(entries[0]["per_label"])
        macro = [e["macro_f1_present"] for e in entries if e.get("macro_f1_present") is not None]
        per_label = {}
        for label in labels:
            values = [e["per_label"][label]["f1"] for e in entries if label in e.get("labels_averaged", labels)]
            per_label[label] = round(float(np.mean(values)), 4) if values else None
        lowest = [e["per_label"][label]["f1"] for e in entries for label in labels
                  if e["per_label"][label]["support"] >= positives]
        mean: dict[str, Any] = {
            "name": name,
            "macro_f1": round(float(np.mean(macro)), 4) if macro else None,
            "per_label": per_label,
            "lowest_label_f1": round(float(min(lowest)), 4) if lowest else None,
        }
        accuracies = [e["kind_accuracy"] for e in entries if e["kind_accuracy"] is not None]
        mean["kind_accuracy"] = round(float(np.mean(accuracies)), 4) if accuracies else None
        means.append(mean)
    return means


def evaluation(
    data: Dataset,
    *,
    strategies: Sequence[str] = ("kfold",),
    errors: bool = False,
    per_label: int = 5,
    progress: Progress = quiet,
    **options: Any,
) -> dict[str, Any]:
    """Cross-validated comparison under one or more split strategies, with xinxi's diagnostics.

    ``options`` are those of :func:`compare` (``folds``, ``seed``, ``methods``,
    ``params``, ``inner_folds``). Returns the first strategy's report
    (``data``, ``split``, ``methods``), with ``calibration`` (and ``errors``
    when asked) of xinxi's out-of-fold predictions; with several strategies,
    ``splits`` holds every report.
    """
    reports = []
    for strategy in strategies:

        def labelled(step: str, done: int, total: int, name: str = strategy) -> None:
            progress(f"{name}: {step}", done, total)

        report, runs = compare(data, strategy=strategy, progress=labelled, **options)
        xinxi = next((run for run in runs if run.name == "xinxi" and run.skipped is None), None)
        if xinxi is not None and xinxi.probabilities is not None and xinxi.tested is not None:
            tested = xinxi.tested
            report["calibration"] = calibration_report(
                data.truth[tested], xinxi.probabilities[tested], data.labels,
                is_analysis=data.is_analysis[tested] if xinxi.analysis is not None else None,
                analysis=None if xinxi.analysis is None else xinxi.analysis[tested],
            )
            if errors:
                pairs = [(item, p) for item, p in zip(data.items, xinxi.predictions, strict=True) if p is not None]
                report["errors"] = error_analysis(
                    [item for item, _ in pairs], [p for _, p in pairs], data.labels, per_label
                )
        reports.append(report)
    result = dict(reports[0])
    if len(reports) > 1:
        result["splits"] = reports
    return result
