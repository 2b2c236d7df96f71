"""Keep the hand-written seed corpus honest as it grows (issue 3's minimums)."""

from __future__ import annotations

import collections
import re

import pytest

from tests.datasets import corpus_quality as quality
from training import SEED_DATA, load_items

TOPICS = quality.TOPICS


@pytest.fixture(scope="module")
def items() -> list[dict]:
    return quality.read_items(SEED_DATA)


def test_schema_and_labels_follow_the_annotation_guide(items: list[dict]) -> None:
    assert quality.schema_problems(items) == []


def test_the_trainer_reads_the_corpus_without_complaint() -> None:
    loaded, problems = load_items(SEED_DATA, require_labels=True)
    assert problems == [] and len(loaded) >= 1500


def test_size_and_topic_minimums(items: list[dict]) -> None:
    stats = quality.distribution(items)
    assert stats["items"] >= 1500
    for topic in TOPICS:
        assert stats["topics"].get(topic, 0) >= 250, topic
    assert stats["no_topic"] >= 250
    assert stats["multi_topic"] >= 200


def test_kind_balance_per_topic(items: list[dict]) -> None:
    stats = quality.distribution(items)
    assert 0.35 <= stats["analysis_share"] <= 0.60
    for topic in TOPICS:
        for kind in ("news", "analysis"):
            assert stats["kind_by_topic"].get(f"{topic}/{kind}", 0) >= 80, (topic, kind)


def test_lengths_are_spread(items: list[dict]) -> None:
    stats = quality.distribution(items)
    assert stats["under_200"] >= 0.15 * stats["items"]
    assert stats["over_800"] >= 0.15 * stats["items"]


def test_units_counties_years_and_adoption(items: list[dict]) -> None:
    stats = quality.distribution(items)
    assert stats["units"] >= 80
    counties = {m.group(0) for i in items for m in re.finditer(r"[\u4e00-\u9fff]{1,3}县", i.get("unit", ""))}
    assert len(counties) >= 10
    assert len([year for year, n in stats["years"].items() if n >= 50]) >= 4
    assert 1 / 9 <= stats["adopted"] / stats["items"] <= 1 / 4


def test_co_occurring_pairs_are_covered(items: list[dict]) -> None:
    pairs = collections.Counter(
        tuple(sorted(pair)) for i in items for pair in _pairs(i["topics"])
    )
    for pair in [("industry", "investment"), ("investment", "rural"), ("emergency", "rural"),
                 ("emergency", "hot_issue"), ("industry", "rural")]:
        assert pairs[tuple(sorted(pair))] >= 20, pair


def _pairs(topics: list[str]) -> list[tuple[str, str]]:
    return [(a, b) for n, a in enumerate(topics) for b in topics[n + 1 :]]


def test_no_near_duplicates(items: list[dict]) -> None:
    assert quality.near_duplicates(items) == []


def test_no_common_opening(items: list[dict]) -> None:
    assert quality.shared_openings(items) == []


def test_no_stock_sentences(items: list[dict]) -> None:
    assert quality.repeated_sentences(items) == []
