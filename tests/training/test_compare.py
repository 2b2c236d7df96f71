"""The comparison suite: every method runs on the same splits and yields metrics in range."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from training.baselines import METHODS, fasttext_module, rule_keywords
from training.compare import compare, evaluation
from training.data import Item
from training.dataset import load_dataset, make_splits, prepare
from training.report import evaluation_markdown, markdown_table


def write_jsonl(items: list[Item], path: Path) -> Path:
    lines = [
        json.dumps({"id": i.id, "title": i.title, "text": i.text, "topics": i.topics, "kind": i.kind},
                   ensure_ascii=False)
        for i in items
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def small(corpus: list[Item]):
    return prepare(corpus[::2])


def _in_range(value: float | None) -> bool:
    return value is not None and 0.0 <= value <= 1.0


def test_every_method_runs_on_the_same_folds(small) -> None:
    report, runs = compare(small, folds=2, seed=0, inner_folds=2)
    names = [entry["name"] for entry in report["methods"]]
    assert names == list(METHODS)
    assert report["split"] == {"strategy": "kfold", "folds": 2, "seed": 0, "held_out": None}
    for entry in report["methods"]:
        if entry["name"] == "fasttext" and fasttext_module() is None:
            assert "not installed" in entry["skipped"]
            continue
        assert _in_range(entry["macro_f1"]) and _in_range(entry["micro_f1"])
        assert set(entry["per_label"]) == set(small.labels)
        assert all(_in_range(v["f1"]) for v in entry["per_label"].values())
        assert _in_range(entry["kind_accuracy"]) and _in_range(entry["kind_roc_auc"])
        assert entry["fit_seconds"] >= 0 and entry["items_per_second"] > 0
        assert len(json.dumps(entry))  # JSON-ready
    by_name = {entry["name"]: entry for entry in report["methods"]}
    assert by_name["xinxi"]["macro_f1"] > 0.5  # 75 training items a fold: far from the full corpus's
    xinxi = next(run for run in runs if run.name == "xinxi")
    assert all(p is not None for p in xinxi.predictions), "every item was held out exactly once"


def test_splits_are_fixed_by_the_seed_and_cover_every_item(small) -> None:
    first = make_splits(small, "kfold", 4, seed=3)
    again = make_splits(small, "kfold", 4, seed=3)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(first, again, strict=True))
    held_out = np.concatenate([test for _, test in first])
    assert sorted(held_out.tolist()) == list(range(len(small)))


def test_leave_one_file_out_holds_out_each_file(tmp_path: Path, corpus: list[Item]) -> None:
    for number, chunk in enumerate((corpus[0:90:3], corpus[1:90:3], corpus[2:90:3]), 1):
        write_jsonl(chunk, tmp_path / f"part-{number}.jsonl")
    data = load_dataset(tmp_path)
    assert sorted(set(data.groups)) == ["part-1", "part-2", "part-3"]
    splits = make_splits(data, "files")
    groups = np.asarray(data.groups)
    assert [sorted(set(groups[test])) for _, test in splits] == [["part-1"], ["part-2"], ["part-3"]]
    assert all(not set(groups[train]) & set(groups[test]) for train, test in splits)
    report, _ = compare(data, strategy="files", methods=["keyword-rules", "sklearn-baseline"])
    assert report["split"]["held_out"] == ["part-1", "part-2", "part-3"]
    single = prepare(corpus[:30])
    with pytest.raises(Exception, match="at least two .jsonl files"):
        make_splits(single, "files")


def test_keyword_rules_come_from_the_dictionary_and_definitions() -> None:
    keywords = rule_keywords()
    assert "招商引资" in keywords["investment"] and "乡村振兴" in keywords["rural"]
    assert "防汛抗旱" in keywords["emergency"] and "规上企业" in keywords["industry"]
    assert "欠薪" in keywords["hot_issue"]
    assert not set(keywords["investment"]) & set(keywords["rural"])


def test_evaluation_markdown_and_cli_report(tmp_path: Path, corpus: list[Item], monkeypatch) -> None:
    from service.cli import app
    from service.settings import get_settings

    monkeypatch.setenv("XINXI_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    report, markdown = tmp_path / "r.json", tmp_path / "r.md"
    corpus_file = write_jsonl(corpus[::3], tmp_path / "small.jsonl")
    result = CliRunner().invoke(
        app,
        ["evaluate", "--data", str(corpus_file), "--compare", "--folds", "2", "--methods",
         "sklearn-baseline,keyword-rules", "--report", str(report), "--markdown", str(markdown)],
    )
    assert result.exit_code == 0, result.output
    content = json.loads(report.read_text(encoding="utf-8"))
    assert [m["name"] for m in content["methods"]] == ["sklearn-baseline", "keyword-rules"]
    assert all(0 <= m["macro_f1"] <= 1 for m in content["methods"])
    text = markdown.read_text(encoding="utf-8")
    assert "| method |" in text and "keyword-rules" in text
    assert result.output.count("keyword-rules") >= 2, "the table is printed"
    result = CliRunner().invoke(app, ["evaluate", "--data", str(corpus_file), "--compare", "--methods", "bert"])
    assert result.exit_code == 2 and "unknown methods bert" in result.output
    get_settings.cache_clear()


def test_evaluation_attaches_calibration_and_errors(small) -> None:
    result = evaluation(small, folds=2, methods=["xinxi"], errors=True, per_label=3, inner_folds=2)
    assert set(result["calibration"]["topics"]) == set(small.labels)
    assert sum(b["count"] for b in result["calibration"]["kind"]["bins"]) == len(small)
    assert set(result["errors"]["topics"]) == set(small.labels)
    text = evaluation_markdown(result)
    assert "## Calibration of xinxi" in text and "## Error analysis of xinxi" in text
    assert markdown_table(result) in text


def test_separate_test_set_scores_only_the_test_items(corpus: list[Item], tmp_path: Path) -> None:
    from training.dataset import TEST_GROUP, with_test_set

    train = prepare(corpus[:200], source="train")
    test_items = [Item(id=f"t-{i.id}", title=i.title, text=i.text, topics=i.topics, kind=i.kind) for i in corpus[200:260]]
    data = with_test_set(train, write_jsonl(test_items, tmp_path / "test.jsonl"))
    splits = make_splits(data, "test")
    assert len(splits) == 1 and len(splits[0][0]) == 200 and len(splits[0][1]) == 60
    assert data.groups.count(TEST_GROUP) == 60
    report, runs = compare(data, strategy="test", methods=("xinxi", "keyword-rules"), inner_folds=2)
    assert all(int(run.tested.sum()) == 60 for run in runs)
    xinxi = report["methods"][0]
    assert sum(entry["support"] for entry in xinxi["per_label"].values()) == int(data.truth[200:].sum())
    assert xinxi["kind"]["items"] == 60
    assert "tested on the 60 of a separate set" in markdown_table(report)


def test_test_set_ids_must_not_repeat_training_ids(corpus: list[Item], tmp_path: Path) -> None:
    from training import TrainingError
    from training.dataset import with_test_set

    train = prepare(corpus[:100])
    with pytest.raises(TrainingError, match="ids in both the training data and the test set"):
        with_test_set(train, write_jsonl(corpus[90:110], tmp_path / "overlap.jsonl"))
