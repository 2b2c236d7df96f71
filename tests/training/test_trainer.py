from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from model import Predictor
from model.artifact import save_version
from model.state import STATE_FILES
from training import TrainingError, fit_model
from training.data import Item
from training.trainer import choose_thresholds


def _probabilities(bundle: dict, items: list[Item]) -> np.ndarray:
    # The probabilities do not depend on the thresholds, which the manifest holds.
    predictor = Predictor(bundle, {"version": "test", "thresholds": dict.fromkeys(bundle["topic_labels"], 0.5)})
    results = predictor.predict([item.as_input() for item in items])
    return np.array([[t.probability for t in r.topics] + [r.kind.analysis_probability] for r in results])


def test_same_data_and_seed_give_the_same_model(corpus: list[Item], tmp_path: Path) -> None:
    sample = corpus[:200]
    first, manifest_a = fit_model(sample, seed=3, folds=3, min_examples=5)
    second, manifest_b = fit_model(sample, seed=3, folds=3, min_examples=5)
    assert manifest_a["thresholds"] == manifest_b["thresholds"]
    assert manifest_a["metrics"] == manifest_b["metrics"]
    np.testing.assert_array_equal(_probabilities(first, corpus[200:260]), _probabilities(second, corpus[200:260]))
    # Byte-identical model files: only the manifest records when and as what version each was saved.
    a = save_version(first, manifest_a, tmp_path / "a")
    b = save_version(second, manifest_b, tmp_path / "b")
    files = sorted(p.name for p in a.iterdir())
    assert files == sorted(p.name for p in b.iterdir()) == sorted([*STATE_FILES, "manifest.json"])
    for name in STATE_FILES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    checksums = [json.loads((d / "manifest.json").read_text(encoding="utf-8"))["files"] for d in (a, b)]
    assert checksums[0] == checksums[1]


def test_unknown_labels_are_refused_by_name(corpus: list[Item]) -> None:
    items = list(corpus[:60]) + [Item(id="x9", text="某条信息", topics=["sports"], kind="news", row=61)]
    with pytest.raises(TrainingError, match=r"unknown labels: 'sports' \(first at row 61, id x9\).*--labels auto"):
        fit_model(items, folds=3)


def test_too_few_examples_are_refused_by_label(corpus: list[Item]) -> None:
    items = [Item(id=i.id, text=i.text, title=i.title, kind=i.kind,
                  topics=[t for t in i.topics if t != "emergency"]) for i in corpus[:80]]
    items[0].topics = ["emergency"]
    with pytest.raises(TrainingError, match=r"emergency has 1 items \(at least 8 needed\)"):
        fit_model(items, folds=3)


def test_thresholds_maximise_f1() -> None:
    truth = np.array([[1], [1], [0], [0], [0]])
    probabilities = np.array([[0.9], [0.35], [0.3], [0.1], [0.05]])
    assert 0.3 < choose_thresholds(truth, probabilities)[0] <= 0.35


def _two_sources() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Source a: 20 positives at 0.4, 20 negatives at 0.1. Source b: 10 positives at 0.9, 300 negatives at 0.45."""
    scores = [0.4] * 20 + [0.1] * 20 + [0.9] * 10 + [0.45] * 300
    truth = [1] * 20 + [0] * 20 + [1] * 10 + [0] * 300
    groups = ["a"] * 40 + ["b"] * 310
    return np.array(truth)[:, None], np.array(scores)[:, None], groups


def test_thresholds_can_maximise_the_mean_f1_over_sources() -> None:
    truth, probabilities, groups = _two_sources()
    # Pooled, source b's 300 negatives decide: cutting above 0.45 gives F1 0.5, below it 0.17.
    assert choose_thresholds(truth, probabilities)[0] == 0.5
    # Each source counted once: at 0.4 source a is perfect and b scores 0.06 (mean 0.53); above
    # 0.45 a scores 0 and b is perfect (mean 0.5).
    assert choose_thresholds(truth, probabilities, groups)[0] == 0.4


def test_sources_with_few_positives_fall_back_to_the_pooled_threshold() -> None:
    truth, probabilities, groups = _two_sources()
    pooled = choose_thresholds(truth, probabilities)
    assert choose_thresholds(truth, probabilities, groups, min_positives=25)[0] == pooled[0]
    # Only source a holds 15 positives or more: its own best threshold, nearest 0.5, wins.
    assert choose_thresholds(truth, probabilities, groups, min_positives=15)[0] == 0.4


def test_single_label_multiclass_corpus_with_its_own_labels(tmp_path: Path) -> None:
    words = {"财经": "股市 银行 利率 基金 证券 汇率", "体育": "球队 比赛 冠军 进球 联赛 教练",
             "科技": "芯片 手机 软件 人工智能 算法 网络"}
    items = []
    for label, vocabulary in words.items():
        terms = vocabulary.split()
        for n in range(24):
            text = "，".join(terms[(n + k) % len(terms)] for k in range(4)) + f"，第{n}条消息。"
            items.append(Item(id=f"{label}{n}", text=text, topics=[label]))
    bundle, manifest = fit_model(items, labels="auto", folds=3, min_examples=5)
    assert manifest["mode"] == "multiclass" and bundle["kind"] is None
    assert manifest["hyperparameters"]["features"]["title_weight"] == 0.0  # no titles: no title block
    result = Predictor(bundle, manifest).predict_one("芯片 算法 软件 发布")
    assert [t.label for t in result.topics if t.selected] == ["科技"]
    assert result.quality_score is None
    loaded = Predictor.load(save_version(bundle, manifest, tmp_path / "v"))
    assert loaded.mode == "multiclass" and loaded.predict_one("芯片 算法 软件 发布").topics == result.topics


def test_end_to_end_train_evaluate_predict_from_the_command_line(
    corpus_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.cli import app
    from service.settings import get_settings

    monkeypatch.setenv("XINXI_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    runner = CliRunner()
    out = tmp_path / "v1"
    result = runner.invoke(app, ["train", "--data", str(corpus_file), "--out", str(out), "--folds", "3"])
    assert result.exit_code == 0, result.output
    assert (out / "manifest.json").is_file()

    report = tmp_path / "report.json"
    result = runner.invoke(app, ["evaluate", "--model", str(out), "--data", str(corpus_file), "--report", str(report)])
    assert result.exit_code == 0, result.output
    metrics = json.loads(report.read_text(encoding="utf-8"))
    assert metrics["topics"]["macro_f1"] > 0.8 and metrics["kind"]["accuracy"] > 0.8

    predictions = tmp_path / "predictions.jsonl"
    result = runner.invoke(app, ["predict", "--model", str(out), "--input", str(corpus_file), "--output", str(predictions)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in predictions.read_text(encoding="utf-8").splitlines()]
    source = [json.loads(line) for line in corpus_file.read_text(encoding="utf-8").splitlines()]
    assert [line["id"] for line in lines] == [s["id"] for s in source]
    assert {"topics", "kind", "xinxi_topics", "xinxi_kind", "xinxi_quality_score", "xinxi_error"} <= set(lines[0])
    assert [line["topics"] for line in lines] == [s["topics"] for s in source], "the input's own labels are kept"

    result = runner.invoke(app, ["predict", "--model", str(out), "--text", "", "--title", "空"])
    assert result.exit_code == 2 and "text is empty" in result.output

    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    result = runner.invoke(app, ["predict", "--model", str(out), "--input", str(empty), "--output", str(predictions)])
    assert result.exit_code == 2 and "the file holds no items" in result.output
    assert len(predictions.read_text(encoding="utf-8").splitlines()) == len(source), "old output kept whole"
    get_settings.cache_clear()


def test_partial_kind_labels_are_refused(corpus: list[Item]) -> None:
    items = [Item(id=i.id, text=i.text, title=i.title, topics=i.topics, kind=i.kind, row=n + 1) for n, i in enumerate(corpus[:80])]
    items[4].kind = None
    with pytest.raises(TrainingError, match=r"kind is missing on 1 of 80 items \(first: row 5"):
        fit_model(items, folds=3, min_examples=5)


def test_the_default_model_is_trained_once_when_none_exists(corpus_file: Path, tmp_path: Path) -> None:
    from model import ModelRegistry
    from training import ensure_active_model

    registry = ModelRegistry(tmp_path / "data")
    steps: list[str] = []
    first = ensure_active_model(registry, corpus_file, progress=lambda s, d, t: steps.append(s), folds=3, min_examples=5)
    assert registry.active_id() == first.name and "done" in steps
    assert ensure_active_model(registry, corpus_file) == first, "an existing active model is reused"
    assert len(registry.versions()) == 1
    with pytest.raises(TrainingError, match="no seed corpus at"):
        ensure_active_model(ModelRegistry(tmp_path / "other"), tmp_path / "missing")


def test_commands_train_the_default_model_first_when_there_is_none(
    corpus_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import training
    from service.cli import app

    monkeypatch.setenv("XINXI_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(training, "DEFAULT_DATA", corpus_file)
    result = CliRunner().invoke(app, ["predict", "--text", "某镇发生山体滑坡，转移群众50人。", "--title", "滑坡"])
    assert result.exit_code == 0, result.output
    assert "training the default model" in result.output
    assert json.loads(result.stdout.splitlines()[-1])["topics"]
    from model import ModelRegistry

    assert ModelRegistry(tmp_path / "data").active_id() is not None
