"""Prediction is total (Hypothesis): any string gives a valid result or InvalidItemError, nothing else."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from model import InvalidItemError, Predictor
from model.text import MAX_CHARS, has_chinese, join_document, normalize

PIECES = st.sampled_from([
    "招商引资", "乡村振兴", "一是", "。", "\n", "\r\n", "\x00", "\x1b[31m", "\u200b", "\u202e", "\u200f", "\ufeff",
    "\ud800", "\udc00", "\ue000", "😀", "👩‍👩‍👧", "🇨🇳", "مرحبا بكم في", "שלום", "Привет", "こんにちは", "안녕",
    "<script>alert(1)</script>", "&amp;lt;", "＜ｐ＞", "ＡＢＣ", "\u3000", "%s%n", "{0}", "' OR 1=1 --", "0" * 40,
])
UNICODE = st.text(st.characters(codec=None), max_size=300)
TEXTS = st.one_of(UNICODE, st.lists(st.one_of(PIECES, UNICODE), max_size=25).map("".join))


def check_result(predictor: Predictor, result: Any, title: str | None, text: str) -> None:
    assert [t.label for t in result.topics] == predictor.topic_labels
    for topic in result.topics:
        assert 0.0 <= topic.probability <= 1.0 and not math.isnan(topic.probability)
        assert all(isinstance(term, str) and term for term in topic.terms)
    if result.kind is not None:
        assert 0.0 <= result.kind.analysis_probability <= 1.0
        assert result.quality_score is not None and 0 <= result.quality_score <= 100
    assert result.confidence in ("normal", "low")
    if not has_chinese(join_document(title, text)):
        assert result.confidence == "low" and not any(t.selected for t in result.topics)
    assert result.to_dict()["model_version"] == predictor.version


def predict_or_refuse(predictor: Predictor, title: str | None, text: str) -> bool:
    """Score one item; True if it was scored (and the result is valid), False if refused as documented."""
    try:
        [result] = predictor.predict([{"id": "x", "title": title, "text": text}])
    except InvalidItemError as exc:
        # Refused only for the documented reason: nothing left once cleaned.
        assert "text is empty" in str(exc), exc
        return False
    check_result(predictor, result, title, text)
    return True


@given(title=st.one_of(st.none(), TEXTS), text=TEXTS)
@example(title=None, text="")
@example(title=None, text="\ud800\udfff")
@example(title="\x00", text="\u200b\u202e\ufeff")
@example(title=None, text="Hello, world: no Chinese at all")
@example(title="👩‍👩‍👧", text="🇨🇳" * 500)
def test_any_text_gets_a_valid_result_or_the_documented_refusal(
    predictor: Predictor, title: str | None, text: str
) -> None:
    scored = predict_or_refuse(predictor, title, text)
    # Refused exactly when nothing is left of the body once cleaned.
    assert scored == bool(normalize(text[:MAX_CHARS]))


@given(st.sampled_from(["招", "a", " ", "\u200b", "😀", "<p>"]), st.integers(0, 60_000))
def test_huge_and_repetitive_texts(predictor: Predictor, unit: str, repeat: int) -> None:
    scored = predict_or_refuse(predictor, None, unit * repeat)
    assert scored == bool(normalize((unit * repeat)[:MAX_CHARS]))


@given(st.lists(st.fixed_dictionaries({"text": TEXTS}), min_size=1, max_size=8))
def test_a_batch_is_all_scored_or_refused_naming_the_item(predictor: Predictor, items: list[dict[str, Any]]) -> None:
    empty = [i for i, item in enumerate(items, start=1) if not normalize(item["text"][:MAX_CHARS])]
    try:
        results = predictor.predict(items)
    except InvalidItemError as exc:
        assert empty and f"item {empty[0]}" in str(exc)
        return
    assert not empty and len(results) == len(items)
    for item, result in zip(items, results, strict=True):
        check_result(predictor, result, None, item["text"])
