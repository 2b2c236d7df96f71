"""Items keep their source; evaluation by held-out source, beside the seed-only model; source-aware training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from training import DataFileError, load_items
from training.compare import _with_present_labels, compare, source_means
from training.data import Item
from training.dataset import SEED_SOURCE, load_dataset, make_splits
from training.errors import TrainingError
from training.report import by_source_rows
from training.trainer import fit_model, source_weights

PROVENANCE = {"origin": "test:fixture", "level": "county"}


def _write(path: Path, items: list[Item], **fields: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as stream:
        for item in items:
            record = {"id": item.id, "title": item.title, "text": item.text, "topics": item.topics,
                      "kind": item.kind, **fields}
            stream.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


@pytest.fixture(scope="module")
def corpus_dirs(tmp_path_factory: pytest.TempPathFactory, corpus: list[Item]) -> tuple[Path, Path]:
    """A seed directory and a directory of two real collections (with SOURCES.md), cut from the small corpus."""
    root = tmp_path_factory.mktemp("by-source")
    seed = _write(root / "seed" / "part-1.jsonl", corpus[:180]).parent
    real = root / "real"
    _write(real / "alpha.jsonl", corpus[180:240], source="alpha", **PROVENANCE)
    _write(real / "beta.jsonl", corpus[240:300], source="beta", **PROVENANCE)
    (real / "SOURCES.md").write_text("# two test collections\n", encoding="utf-8")
    return seed, real


def test_items_keep_their_source(corpus_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    seed, real = corpus_dirs
    items, problems = load_items([seed, real], require_labels=True)
    assert problems == [] and len(items) == 300
    assert {i.source for i in items[:180]} == {"seed"}, "a directory names the source of records without one"
    assert [i.source for i in items[180:]] == ["alpha"] * 60 + ["beta"] * 60
    single = _write(tmp_path / "my-items.jsonl", items[:3])
    assert {i.source for i in load_items(single)[0]} == {"my-items"}


def test_several_paths_refuse_a_repeated_id(corpus_dirs: tuple[Path, Path]) -> None:
    seed, _ = corpus_dirs
    with pytest.raises(DataFileError, match=r"id .* is already used in"):
        load_items([seed, seed / "part-1.jsonl"])


def test_a_real_collection_must_carry_provenance_and_no_html(corpus: list[Item], tmp_path: Path) -> None:
    real = tmp_path / "real"
    _write(real / "gamma.jsonl", corpus[:2], source="gamma", **PROVENANCE)
    lines = (real / "gamma.jsonl").read_text(encoding="utf-8").splitlines()
    broken = json.loads(lines[1])
    del broken["origin"]
    broken["text"] += "<br/>"
    (real / "gamma.jsonl").write_text("\n".join([lines[0], json.dumps(broken, ensure_ascii=False), "{oops"]) + "\n",
                                      encoding="utf-8")
    (real / "SOURCES.md").write_text("# test\n", encoding="utf-8")
    with pytest.raises(DataFileError) as caught:
        load_items(real)
    message = str(caught.value)
    assert "gamma.jsonl:3: not valid JSON" in message
    assert "gamma.jsonl:2: origin is missing or empty" in message
    assert "gamma.jsonl:2: HTML or page furniture left in the text: '<br/>'" in message


def test_sources_split_holds_out_each_real_collection_never_the_seed(corpus_dirs: tuple[Path, Path]) -> None:
    data = load_dataset(list(corpus_dirs))
    splits = make_splits(data, "sources")
    sources = np.asarray(data.sources)
    assert [sorted(set(sources[test])) for _, test in splits] == [["alpha"], ["beta"]]
    for train, test in splits:
        assert SEED_SOURCE in set(sources[train]) and not set(train) & set(test)
    seed_only = load_dataset(corpus_dirs[0])
    with pytest.raises(TrainingError, match="at least two sources"):
        make_splits(seed_only, "sources")


def test_by_source_report_beside_the_seed_only_model(corpus_dirs: tuple[Path, Path]) -> None:
    data = load_dataset(list(corpus_dirs))
    report, _ = compare(data, strategy="sources", methods=["xinxi", "xinxi-seed-only"], inner_folds=2)
    assert report["split"]["held_out"] == ["alpha", "beta"]
    assert list(report["per_source"]) == ["alpha", "beta"]
    for entries in report["per_source"].values():
        assert [e["name"] for e in entries] == ["xinxi", "xinxi-seed-only"]
        for entry in entries:
            assert sum(v["support"] for v in entry["per_label"].values()) >= 1
            assert 0.0 <= entry["macro_f1"] <= 1.0 and 0.0 <= entry["kind_accuracy"] <= 1.0
    means = {m["name"]: m for m in report["mean_over_sources"]}
    alpha, beta = report["per_source"]["alpha"][0], report["per_source"]["beta"][0]
    for entry in (alpha, beta):
        present = [label for label, v in entry["per_label"].items() if v["support"] >= 10]
        assert entry["labels_averaged"] == present
        assert entry["macro_f1_present"] == pytest.approx(np.mean([entry["per_label"][x]["f1"] for x in present]), abs=1e-4)
    assert means["xinxi"]["macro_f1"] == pytest.approx(
        (alpha["macro_f1_present"] + beta["macro_f1_present"]) / 2, abs=1e-4)
    header, rows = by_source_rows(report)
    assert header[:3] == ["held-out source", "items", "method"] and len(rows) == 2 * 2 + 2
    assert rows[0][:3] == ["alpha", "60", "xinxi"]


def test_labels_absent_from_a_source_do_not_count_in_its_macro_f1() -> None:
    def entry(f1: dict[str, tuple[float, int]]) -> dict:
        return {"name": "xinxi", "kind_accuracy": 1.0,
                "per_label": {label: {"f1": v, "support": n} for label, (v, n) in f1.items()}}

    bulletins = _with_present_labels(entry({"emergency": (0.9, 21), "rural": (0.0, 0), "industry": (0.0, 3)}))
    reports = _with_present_labels(entry({"emergency": (0.5, 40), "rural": (0.8, 32), "industry": (0.6, 12)}))
    assert bulletins["labels_averaged"] == ["emergency"] and bulletins["macro_f1_present"] == 0.9
    assert reports["macro_f1_present"] == pytest.approx((0.5 + 0.8 + 0.6) / 3, abs=1e-4)
    (mean,) = source_means({"bulletins": [bulletins], "reports": [reports]})
    assert mean["macro_f1"] == pytest.approx((0.9 + reports["macro_f1_present"]) / 2, abs=1e-4)
    assert mean["per_label"] == {"emergency": 0.7, "rural": 0.8, "industry": 0.6}
    assert mean["lowest_label_f1"] == 0.5, "the lowest F1 of a label with 30+ positives in a source"


def test_source_weights_balance_the_collections() -> None:
    assert source_weights(["a", "a", "a", "b"], 0.0) is None
    full = source_weights(["a", "a", "a", "b"], 1.0)
    assert full is not None and full.mean() == pytest.approx(1.0)
    assert full[:3].sum() == pytest.approx(full[3]), "each source weighs the same in total"
    half = source_weights(["a", "a", "a", "b"], 0.5)
    assert half is not None and 1 < half[3] / half[0] < 3


def test_training_by_source_with_weights_and_unlabelled_text_is_deterministic(corpus_dirs: tuple[Path, Path]) -> None:
    items, _ = load_items(list(corpus_dirs), require_labels=True)
    params = {"data": {"threshold_split": "source", "source_balance": 0.5}}
    unlabelled = [item.text for item in items[::7]]
    first, manifest = fit_model(items, folds=3, params=params, min_examples=5, unlabelled=unlabelled)
    again, _ = fit_model(items, folds=3, params=params, min_examples=5, unlabelled=unlabelled)
    assert manifest["metrics"]["cross_validation"]["folds"] == 3, "seed, alpha and beta held out in turn"
    assert manifest["metrics"]["cross_validation"]["split"] == "source"
    assert manifest["training_data"]["by_source"] == {"seed": 180, "alpha": 60, "beta": 60}
    assert manifest["training_data"]["unlabelled_documents"] == len(unlabelled)
    probe = [item.text for item in items[:5]]
    np.testing.assert_array_equal(first["topics"].predict_proba(probe), again["topics"].predict_proba(probe))
    plain, _ = fit_model(items, folds=3, min_examples=5)
    assert not np.allclose(first["topics"].predict_proba(probe), plain["topics"].predict_proba(probe))
    with pytest.raises(TrainingError, match="unknown threshold split"):
        fit_model(items, folds=3, min_examples=5, params={"data": {"threshold_split": "random"}})
    with pytest.raises(TrainingError, match="unknown threshold objective 'median'"):
        fit_model(items, folds=3, min_examples=5, params={"data": {"threshold_objective": "median"}})
    per_source = {"data": {"threshold_split": "source", "threshold_objective": "mean-over-sources"}}
    _, by_mean = fit_model(items, folds=3, params=per_source, min_examples=5)
    assert set(by_mean["thresholds"]) == set(manifest["thresholds"])
    assert all(0.05 <= t <= 0.95 for t in by_mean["thresholds"].values())


def test_evaluate_by_source_from_the_command_line(corpus_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    from service.cli import app

    seed, real = corpus_dirs
    report = tmp_path / "by-source.json"
    markdown = tmp_path / "by-source.md"
    result = CliRunner().invoke(app, ["evaluate", "--data", str(seed), "--data", str(real), "--by-source",
                                      "--report", str(report), "--markdown", str(markdown)])
    assert result.exit_code == 0, result.output
    assert "by held-out source" in result.output and "xinxi-seed-only" in result.output
    saved = json.loads(report.read_text(encoding="utf-8"))
    assert [m["name"] for m in saved["mean_over_sources"]] == ["xinxi", "xinxi-seed-only"]
    assert "| alpha | 60 | xinxi |" in markdown.read_text(encoding="utf-8")
    refused = CliRunner().invoke(app, ["evaluate", "--data", str(seed), "--by-source"])
    assert refused.exit_code == 2 and "at least two sources" in refused.output


def test_held_out_text_can_shape_the_model_without_its_labels(corpus_dirs: tuple[Path, Path]) -> None:
    """The transductive variants: IDF on the held-out text, and self-training on its confident predictions."""
    from training.baselines import XinxiMethod

    data = load_dataset(list(corpus_dirs))
    train = np.flatnonzero(np.asarray(data.sources) != "beta")
    plain = XinxiMethod(inner_folds=2)
    plain.fit(data, train)
    seen = XinxiMethod(inner_folds=2, params={"unlabelled": {"idf": True}})
    seen.fit(data, train)
    # The held-out documents enter the vocabulary, never as labelled items.
    assert seen.predictor_.manifest["training_data"]["unlabelled_documents"] == len(data) - len(train)
    assert seen.predictor_.manifest["training_data"]["items"] == plain.predictor_.manifest["training_data"]["items"]

    learner = XinxiMethod(inner_folds=2, params={"unlabelled": {"self_training": 1.0}})
    learner.fit(data, train)
    rest = np.setdiff1d(np.arange(len(data)), train)
    pseudo = learner._pseudo_labelled(data, rest, 1.0)
    assert pseudo and all(p.id.startswith("pseudo-") and p.source == "beta" for p in pseudo)
    assert len(pseudo) < len(rest), "only the items the first model is sure of are pseudo-labelled"
    trained_on = learner.predictor_.manifest["training_data"]["items"]
    assert trained_on > len(train), "the second fit saw the pseudo-labelled items"
