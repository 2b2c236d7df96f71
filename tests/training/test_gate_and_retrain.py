"""Retraining on the corpus and stored items, judged by the promotion gate (plain dicts stand in for the store)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from model import Predictor
from model.text import content_hash
from tests.conftest import small_items
from training import HOLDOUT_DATA, Gate, load_items
from training.data import Item
from training.gate import judge
from training.retrain import merge, retrain, stored_items

FIT = {"seed": 0, "folds": 2}


def record(item: Item, change_id: int, **changes: object) -> dict:
    """A stored item as ``Store.training_items`` gives it."""
    values = {
        "id": change_id, "content_hash": content_hash(item.title, item.text), "title": item.title,
        "text": item.text, "topics": list(item.topics or []), "kind": item.kind, "unit": "青溪县",
        "adopted_level": "county", "recorded_at": f"2026-03-0{1 + change_id % 8}T08:00:00+00:00",
        "change_id": change_id,
    }
    values.update(changes)
    return values


@pytest.fixture(scope="module")
def small_corpus() -> list[Item]:
    return small_items()[::3]


@pytest.fixture(scope="module")
def holdout() -> list[Item]:
    return load_items(HOLDOUT_DATA, require_labels=True)[0][::4]


def test_an_editors_labels_win_over_the_corpus_for_the_same_text(small_corpus: list[Item]) -> None:
    target = small_corpus[0]
    relabelled = "emergency" if "emergency" not in (target.topics or []) else "rural"
    stored, rejected = stored_items([record(target, 7, topics=[relabelled], title=target.title + " ")])
    assert rejected == []
    merged, replaced = merge(small_corpus, stored, exclude=set())
    assert replaced == 1 and len(merged) == len(small_corpus)
    copies = [item for item in merged if content_hash(item.title, item.text) == content_hash(target.title, target.text)]
    assert [item.topics for item in copies] == [[relabelled]]


def test_stored_items_that_cannot_be_trained_on_are_reported_with_the_reason(small_corpus: list[Item]) -> None:
    records = [record(small_corpus[0], 1, topics=["weather"]), record(small_corpus[1], 2, kind=None),
               record(small_corpus[2], 3, text="  "), record(small_corpus[3], 4, topics=["招商引资"], kind="综合类")]
    stored, rejected = stored_items(records)
    assert [item.topics for item in stored] == [["investment"]] and stored[0].kind == "analysis"
    assert [(r["id"], r["reason"]) for r in rejected] == [
        (1, "unknown topics weather"), (2, "no kind (news or analysis)"), (3, "empty text")
    ]


def test_the_gate_refuses_a_worse_candidate_and_names_the_labels_that_fell() -> None:
    active = {"topics": {"macro_f1": 0.90, "items": 40, "per_label": {
        "industry": {"f1": 0.9, "support": 10}, "rural": {"f1": 0.9, "support": 12}}},
        "kind": {"accuracy": 0.95}}
    candidate = {"topics": {"macro_f1": 0.885, "items": 40, "per_label": {
        "industry": {"f1": 0.87, "support": 10}, "rural": {"f1": 0.9, "support": 12}}},
        "kind": {"accuracy": 0.945}}
    verdict = judge("holdout", active, candidate, Gate())
    assert verdict["passed"] is False
    assert verdict["metrics"]["kind accuracy"]["passed"] is True  # 0.005 below: within 0.01
    assert len(verdict["reasons"]) == 1
    assert "holdout: macro F1 0.885 is 0.015 below the active model's 0.900" in verdict["reasons"][0]
    assert "industry 0.900 -> 0.870 (-0.030, 10 positives)" in verdict["reasons"][0]
    assert "rural" not in verdict["reasons"][0]
    assert judge("holdout", active, candidate, Gate(max_macro_f1_drop=0.02))["passed"] is True


def test_without_an_active_model_the_candidate_is_saved_with_what_it_saw(
    tmp_path: Path, small_corpus: list[Item], holdout: list[Item]
) -> None:
    records = [record(item, n) for n, item in enumerate(small_items()[1::3][::5][:8], 1)]
    # Without an active model there is nothing to judge against; watermark 8: one fit, on everything.
    report = retrain(small_corpus, records, holdout, out=tmp_path / "job", active_dir=None, watermark=8,
                     fit_options=FIT, corpus_info={"sha256": "c0ffee"})
    assert report["promote"] is True and report["predecessor"] is None
    manifest = json.loads((Path(report["candidate_dir"]) / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["version"] == report["version"]
    assert manifest["training_data"]["store"]["up_to_change"] == 8
    assert manifest["training_data"]["store"]["up_to_time"] == "2026-03-08T08:00:00+00:00"
    assert manifest["training_data"]["corpus"] == {"sha256": "c0ffee"}
    assert manifest["training_data"]["items"] == report["data"]["training_items"] == len(small_corpus) + 8
    assert report["data"]["new_stored_items"] == 0 and report["data"]["gate_training_items"] == len(small_corpus) + 8
    assert Predictor.load(report["candidate_dir"]).predict_one("某县召开防汛工作会议").model_version == report["version"]


def test_stored_items_the_active_model_saw_are_trained_on_and_only_the_new_ones_are_judged_on(
    tmp_path: Path, small_corpus: list[Item], holdout: list[Item], model_dir: Path
) -> None:
    active_dir = model_dir
    extra = small_items()[1::3][:20]
    records = [record(item, n) for n, item in enumerate(extra, 1)]
    report = retrain(small_corpus, records, holdout, out=tmp_path / "job", active_dir=active_dir, watermark=12,
                     fit_options=FIT, gate=Gate(max_macro_f1_drop=1.0, max_kind_accuracy_drop=1.0))
    assert report["data"]["new_stored_items"] == 8
    assert report["data"]["gate_training_items"] == len(small_corpus) + 12
    assert report["data"]["training_items"] == len(small_corpus) + 20
    sets = {verdict["set"]: verdict for verdict in report["sets"]}
    assert sets["new stored items"]["items"] == 8 and sets["holdout"]["items"] == len(holdout)
    assert sets["holdout, final model (new stored items included)"]["passed"] is True
    assert report["promote"] is True
