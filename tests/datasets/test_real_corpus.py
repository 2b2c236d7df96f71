"""Keep the real-items corpus honest (ANNOTATION.md §4, issue 10): provenance, labels, duplicates, composition."""

from __future__ import annotations

import pytest

from training import LABELS_DATA, REAL_DATA, SEED_DATA, check_corpus, load_items
from training.corpus import PASSES, read_labels


@pytest.fixture(scope="module")
def checked() -> tuple[list, dict]:
    return check_corpus(REAL_DATA, SEED_DATA, LABELS_DATA)


def test_every_record_has_provenance_settled_labels_and_no_furniture(checked: tuple[list, dict]) -> None:
    problems, _ = checked
    assert [str(p) for p in problems] == []


def test_the_loader_reads_the_real_items_with_their_sources() -> None:
    items, problems = load_items(REAL_DATA, require_labels=True)
    assert problems == [] and len(items) >= 2000
    assert all(item.source and item.source != "real" for item in items)


def test_size_sources_and_levels(checked: tuple[list, dict]) -> None:
    _, report = checked
    assert report["items"] >= 2000
    assert len([s for s, n in report["sources"].items() if n >= 20]) >= 4
    assert report["county_or_city_share"] >= 0.40


def test_topic_kind_and_no_topic_minimums(checked: tuple[list, dict]) -> None:
    _, report = checked
    assert report["no_topic"] >= 400
    assert report["kinds"]["analysis"] >= 500
    for topic in ("industry", "investment", "rural", "hot_issue", "emergency"):
        assert report["topics"][topic] >= 250, topic


def test_both_passes_label_every_item_and_agree_well(checked: tuple[list, dict]) -> None:
    _, report = checked
    ids = {item.id for item in load_items(REAL_DATA)[0]}
    for name in PASSES:
        assert ids <= set(read_labels(LABELS_DATA / f"{name}.jsonl")), name
    agreement = report["agreement"]
    assert agreement["macro_f1"] >= 0.85 and agreement["kind"]["kappa"] >= 0.8
