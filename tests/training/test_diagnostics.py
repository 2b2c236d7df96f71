"""Calibration tables and error analysis."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from model import Predictor
from training.data import Item
from training.diagnostics import (
    NONE,
    calibration_from_predictions,
    calibration_report,
    confusion_summary,
    error_analysis,
    expected_calibration_error,
    reliability_table,
)
from training.report import calibration_markdown, errors_markdown


def test_reliability_table_counts_add_up_and_means_are_right() -> None:
    rng = np.random.default_rng(0)
    probabilities = rng.random(500)
    probabilities[:3] = [0.0, 1.0, 0.1]  # edges land in the first and last bins
    truth = (rng.random(500) < probabilities).astype(int)
    table = reliability_table(truth, probabilities, bins=10)
    assert len(table) == 10 and sum(row["count"] for row in table) == 500
    assert table[0]["lower"] == 0.0 and table[-1]["upper"] == 1.0
    for row in table:
        if row["count"]:
            assert row["lower"] <= row["mean_predicted"] <= row["upper"]
            assert 0.0 <= row["observed"] <= 1.0
    assert expected_calibration_error(table) < 0.1, "sampled from its own probabilities: well calibrated"
    overconfident = reliability_table(truth, np.where(probabilities > 0.5, 1.0, 0.0))
    assert expected_calibration_error(overconfident) > expected_calibration_error(table)


def test_calibration_report_per_topic_and_kind() -> None:
    truth = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    probabilities = np.array([[0.9, 0.2], [0.1, 0.7], [0.8, 0.6], [0.3, 0.1]])
    report = calibration_report(truth, probabilities, ["a", "b"], is_analysis=np.array([1, 0, 1, 0]),
                                analysis=np.array([0.7, 0.2, 0.9, 0.4]), bins=5)
    assert set(report["topics"]) == {"a", "b"}
    assert report["topics"]["a"]["brier"] == pytest.approx(np.mean((probabilities[:, 0] - truth[:, 0]) ** 2), abs=1e-4)
    assert all(sum(b["count"] for b in e["bins"]) == 4 for e in [*report["topics"].values(), report["kind"]])
    text = calibration_markdown(report)
    assert "| kind (analysis) |" in text and "Brier" in text


def test_confusion_summary_counts_which_topic_is_taken_for_which() -> None:
    labels = ["industry", "investment", "rural"]
    truth = np.array([[1, 0, 0], [1, 0, 0], [0, 0, 1], [0, 0, 0], [0, 1, 0]])
    selected = np.array([[0, 1, 0], [0, 1, 0], [0, 0, 0], [1, 0, 0], [0, 1, 0]])
    summary = confusion_summary(truth, selected, labels)
    assert summary["pairs"]["industry"]["investment"] == 2
    assert summary["pairs"]["rural"][NONE] == 1
    assert summary["pairs"][NONE]["industry"] == 1
    assert summary["top"][0] == {"true": "industry", "predicted": "investment", "items": 2}


def test_error_analysis_of_a_predictor(predictor: Predictor, corpus: list[Item]) -> None:
    # Swap two topics on some items so that the model's confident answers become mistakes.
    items = []
    for item in corpus[:120]:
        topics = ["investment" if t == "industry" else t for t in item.topics or []]
        items.append(Item(id=item.id, title=item.title, text=item.text, topics=topics, kind=item.kind, row=item.row))
    predictions = predictor.predict([item.as_input() for item in items])
    report = error_analysis(items, predictions, predictor.topic_labels, per_label=3)
    industry = report["topics"]["industry"]
    assert industry["counts"]["false_positives"] > 0 and len(industry["false_positives"]) <= 3
    first = industry["false_positives"][0]
    assert first["terms"] and "industry" in first["predicted"] and "industry" not in first["true"]
    probabilities = [m["probability"] for m in industry["false_positives"]]
    assert probabilities == sorted(probabilities, reverse=True), "most confident first"
    assert any(e["true"] == "investment" and e["predicted"] == "industry" for e in report["confusion"]["top"])
    text = errors_markdown(report)
    assert "### industry (产业发展)" in text and first["id"] in text
    calibration = calibration_from_predictions(items, predictions, predictor.topic_labels)
    assert sum(b["count"] for b in calibration["kind"]["bins"]) == len(items)


def test_cli_errors_on_a_model(tmp_path: Path, model_dir: Path, corpus_file: Path) -> None:
    from service.cli import app

    markdown = tmp_path / "errors.md"
    result = CliRunner().invoke(
        app,
        ["evaluate", "--model", str(model_dir), "--data", str(corpus_file), "--errors", "--markdown", str(markdown)],
    )
    assert result.exit_code == 0, result.output
    text = markdown.read_text(encoding="utf-8")
    assert "## Calibration" in text and "## Error analysis" in text
    assert "Which topics are taken for which" in result.output
