"""Comparison on generic labelled data: text<TAB>label with label names, CSV, single-label."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from training.compare import compare
from training.data import Item
from training.dataset import load_dataset

NAMES = ["产业", "招商", "农村", "突发"]
SOURCE = {"industry": 0, "investment": 1, "rural": 2, "emergency": 3}


def _single_label(corpus: list[Item]) -> list[tuple[str, int]]:
    """Title and first sentences of items with exactly one of four topics: a news-title-like set."""
    rows = []
    for item in corpus:
        if item.topics and len(item.topics) == 1 and item.topics[0] in SOURCE:
            rows.append((item.title + "。" + item.text[:60].replace("\n", " "), SOURCE[item.topics[0]]))
    return rows


@pytest.fixture(scope="module")
def text_label_file(tmp_path_factory: pytest.TempPathFactory, corpus: list[Item]) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("generic")
    data = directory / "train.txt"
    data.write_text("".join(f"{text}\t{label}\n" for text, label in _single_label(corpus)), encoding="utf-8")
    names = directory / "class.txt"
    names.write_text("\n".join(NAMES) + "\n", encoding="utf-8")
    return data, names


def test_text_tab_label_with_label_names_is_multiclass(text_label_file: tuple[Path, Path]) -> None:
    path, names = text_label_file
    data = load_dataset(path, label_names=names.read_text(encoding="utf-8").split())
    assert data.labels == NAMES and data.multiclass and not data.has_kind
    report, _ = compare(data, folds=3, methods=["xinxi", "sklearn-baseline", "keyword-rules"], inner_folds=2)
    assert report["data"]["mode"] == "multiclass" and report["data"]["kinds"] is None
    for entry in report["methods"]:
        assert 0.3 < entry["macro_f1"] <= 1.0, entry["name"]
        # single-label: micro F1 is accuracy, and every item gets exactly one label
        assert entry["micro_f1"] == pytest.approx(entry["subset_accuracy"], abs=1e-4)
        assert entry["kind"] is None and entry["kind_accuracy"] is None
    xinxi = report["methods"][0]
    assert xinxi["macro_f1"] > 0.6


def test_csv_with_text_and_label_columns(tmp_path: Path, corpus: list[Item]) -> None:
    path = tmp_path / "labelled.csv"
    with path.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["text", "label"])
        for text, label in _single_label(corpus):
            writer.writerow([text, NAMES[label]])
    data = load_dataset(path, labels="auto")
    assert sorted(data.labels) == sorted(NAMES) and data.multiclass
    report, _ = compare(data, folds=2, methods=["sklearn-baseline", "keyword-rules"])
    assert all(0.0 <= m["macro_f1"] <= 1.0 for m in report["methods"])


def test_cli_compare_on_text_label_file(tmp_path: Path, text_label_file: tuple[Path, Path], monkeypatch) -> None:
    from service.cli import app
    from service.settings import get_settings

    monkeypatch.setenv("XINXI_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    path, names = text_label_file
    report = tmp_path / "report.json"
    result = CliRunner().invoke(
        app,
        ["evaluate", "--data", str(path), "--label-names", str(names), "--compare", "--folds", "2",
         "--methods", "keyword-rules,sklearn-baseline", "--report", str(report)],
    )
    assert result.exit_code == 0, result.output
    content = json.loads(report.read_text(encoding="utf-8"))
    assert content["data"]["labels"] == NAMES and content["data"]["mode"] == "multiclass"
    assert {m["name"] for m in content["methods"]} == {"keyword-rules", "sklearn-baseline"}
    get_settings.cache_clear()
