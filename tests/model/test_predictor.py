from __future__ import annotations

import numpy as np
import pytest

from model import InvalidItemError, Predictor
from model.text import MAX_CHARS, join_document

ITEM = {
    "id": "t1",
    "title": "我县召开招商引资项目推进会",
    "text": "3月5日，县委召开招商引资工作推进会，副县长出席。会议要求各乡镇抓好在谈项目，确保签约项目尽快落地。",
}


def test_fast_path_equals_the_estimators_own_probabilities(predictor: Predictor, fitted, corpus) -> None:
    """The loaded model (plain state, no scikit-learn object) against the fitted estimators it was saved from."""
    bundle, _ = fitted
    items = [item.as_input() for item in corpus[:40]]
    documents = [join_document(i["title"], i["text"]) for i in items]
    topics = bundle["topics"].predict_proba(documents)
    kind = bundle["kind"].predict_proba(documents)[:, 1]
    results = predictor.predict(items)
    ours = np.array([[t.probability for t in r.topics] for r in results])
    np.testing.assert_allclose(ours, topics, atol=1e-4)
    np.testing.assert_allclose([r.kind.analysis_probability for r in results], kind, atol=1e-4)


def test_result_shape(predictor: Predictor) -> None:
    result = predictor.predict([ITEM])[0].to_dict()
    assert result["id"] == "t1"
    assert [t["label"] for t in result["topics"]] == predictor.topic_labels
    for topic in result["topics"]:
        assert 0.0 <= topic["probability"] <= 1.0
        assert isinstance(topic["selected"], bool)
        assert all(isinstance(term, str) and len(term) >= 2 for term in topic["terms"])
    assert result["kind"]["label"] in ("news", "analysis")
    assert result["quality_score"] == round(100 * result["kind"]["analysis_probability"])
    assert result["model_version"] == predictor.version


def test_investment_item_is_tagged_with_its_terms(predictor: Predictor) -> None:
    result = predictor.predict([ITEM])[0]
    investment = next(t for t in result.topics if t.label == "investment")
    assert investment.selected
    assert any("招商" in term or "签约" in term or "项目" in term for term in investment.terms)
    assert result.kind.label == "news"
    assert result.suggestions, "a short news item should get suggestions"


def test_predict_keeps_input_order(predictor: Predictor, corpus) -> None:
    items = [{"id": item.id, "title": item.title, "text": item.text} for item in corpus[:25]]
    assert [r.id for r in predictor.predict(items)] == [i["id"] for i in items]
    singles = [predictor.predict([i])[0].quality_score for i in items[:5]]
    assert singles == [r.quality_score for r in predictor.predict(items[:5])]


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"id": "e", "text": ""}, r"item 1 \(id e\): text is empty"),
        ({"id": "w", "text": " \n\t "}, r"text is empty"),
        ({"id": "c", "text": "\x00\u200b<br/>"}, r"text is empty once control characters"),
        ({"id": "z", "title": "有标题", "text": "\u200b\u200b"}, r"item 1 \(id z\): text is empty once"),
        ({"id": "m", "title": "只有标题"}, r"text is missing"),
        ({"id": "n", "text": 12}, r"text must be a string, got int"),
        ({"id": "t", "text": "正文", "title": 5}, r"title must be a string"),
    ],
)
def test_bad_items_name_the_item(predictor: Predictor, item: dict, message: str) -> None:
    with pytest.raises(InvalidItemError, match=message):
        predictor.predict([item])


def test_non_mapping_item(predictor: Predictor) -> None:
    with pytest.raises(InvalidItemError, match="item 2: expected an object"):
        predictor.predict([ITEM, "text"])


def test_huge_text_is_truncated_with_a_warning(predictor: Predictor) -> None:
    result = predictor.predict_one("县委召开会议。" * (MAX_CHARS // 7 + 500))
    assert any(str(MAX_CHARS) in warning for warning in result.warnings)


def test_text_without_chinese_gives_low_confidence(predictor: Predictor) -> None:
    result = predictor.predict_one("Quarterly report 2024: output up 12% year on year.")
    assert result.confidence == "low"
    assert not any(t.selected for t in result.topics)
    assert result.warnings


def test_emoji_and_control_characters_do_not_crash(predictor: Predictor) -> None:
    result = predictor.predict_one("🚒 4月2日凌晨，\x07某镇一民房发生火灾，消防救援队伍及时处置，无人员伤亡。🔥")
    assert result.kind is not None and 0 <= result.quality_score <= 100


def test_compiled_features_equal_the_fitted_union(predictor: Predictor, fitted, corpus) -> None:
    documents = [join_document(i.title, i.text) for i in corpus[:60]] + ["", "no Chinese 123", "单字"]
    ours, _ = predictor._compiled.transform(documents)
    theirs = fitted[0]["topics"].named_steps["features"].transform(documents)
    np.testing.assert_allclose(ours.toarray(), theirs.toarray(), rtol=1e-5, atol=1e-6)


def test_kind_terms_show_the_texts_own_structure_evidence(predictor: Predictor) -> None:
    analysis = predictor.predict_one(
        "今年以来，县里多措并举推进招商引资，1至5月新签约项目21个，协议总投资48.6亿元，同比增长23%。"
        "一是强化产业链招商，梳理缺链补链项目28个；二是创新以商招商，举办推介会3场；三是优化营商环境，审批时限压缩40%。"
        "目前仍存在项目落地慢、要素保障不足等问题，主要原因是用地指标紧张。建议下一步建立在谈项目台账，实行县级领导包联。",
        title="我县多措并举推动招商引资提质增效",
    )
    news = predictor.predict_one("3月5日，县委召开招商引资工作推进会，副县长出席并讲话。", title="县委召开招商推进会")
    assert analysis.kind.label == "analysis" and news.kind.label == "news"
    assert {"一是", "二是", "三是"} & set(analysis.kind.terms)
    assert "3月5日" in news.kind.terms or "召开" in news.kind.terms


@pytest.mark.parametrize(
    "options",
    [
        {"char_ngrams": (1, 3), "use_structure": True},
        {"word_ngrams": (1, 1), "char_ngrams": (2, 3)},
        {"word_ngrams": (1, 3), "char_ngrams": (2, 4), "sublinear_tf": False, "max_features": 3000},
        {"use_words": False, "use_structure": True, "structure_weight": 0.5},
    ],
)
def test_compiled_features_match_every_feature_setting(corpus, options: dict) -> None:
    from model.compiled import CompiledFeatures
    from model.features import build_features
    from model.state import feature_blocks

    documents = [join_document(i.title, i.text) for i in corpus[:80]]
    union = build_features(**options).fit(documents)
    probe = documents[:30] + ["", "单字", "no Chinese 123", "招商，的，引资 招商 引资"]
    ours, counts = CompiledFeatures(feature_blocks(union)).transform(probe)
    np.testing.assert_allclose(ours.toarray(), union.transform(probe).toarray(), rtol=1e-5, atol=1e-6)
    assert len(counts) == len(probe)


def test_title_equal_to_text_is_not_empty(predictor: Predictor) -> None:
    assert predictor.predict([{"title": "abc", "text": "abc"}])[0].confidence == "low"


def test_structure_evidence_comes_first_when_the_model_has_structure_features(corpus) -> None:
    from training import fit_model

    bundle, manifest = fit_model(corpus, folds=3, min_examples=5, params={"features": {"use_structure": True}})
    with_structure = Predictor(bundle, {**manifest, "version": "structure"})
    news = with_structure.predict_one(
        "3月5日，县委召开招商引资工作推进会，副县长出席并讲话，要求各乡镇抓好在谈项目。", title="县委召开招商推进会"
    )
    assert news.kind.label == "news"
    assert "3月5日" in news.kind.terms, news.kind.terms


def test_a_training_item_and_the_same_item_predicted_have_identical_features(
    predictor: Predictor, fitted, corpus
) -> None:
    """Train/serve skew: the trainer's documents and the Predictor's are cut and joined the same way."""
    from training.data import Item
    from training.dataset import prepare

    base = corpus[0]
    long_item = Item(
        id="long", title="标题" * 300, text=base.text * (MAX_CHARS // len(base.text) + 2),
        topics=base.topics, kind=base.kind, row=1,
    )
    items = [long_item, *corpus[1:4]]
    trained = fitted[0]["topics"].named_steps["features"].transform(prepare(items).documents)
    predicted = predictor.transform([item.as_input() for item in items])
    assert len(long_item.text) > MAX_CHARS
    np.testing.assert_allclose(predicted.toarray(), trained.toarray(), rtol=1e-5, atol=1e-6)


def test_document_parts_cut_title_and_body_at_their_limits() -> None:
    from model.text import MAX_TITLE_CHARS, document_parts

    title, body = document_parts("题" * (MAX_TITLE_CHARS + 10), "文" * (MAX_CHARS + 10))
    assert len(title) == MAX_TITLE_CHARS and len(body) == MAX_CHARS
    assert join_document("题" * (MAX_TITLE_CHARS + 10), "文" * (MAX_CHARS + 10)) == f"{title}\n{body}"


def test_selected_terms_are_the_full_terms_of_the_selected_topics_and_the_kind(predictor: Predictor, corpus) -> None:
    """``terms="selected"`` (what a scored file shows) is a faster subset of the full result, equal where it shows."""
    items = [{"id": str(i), "title": item.title, "text": item.text} for i, item in enumerate(corpus[:120])]
    full = predictor.predict(items)
    lean = predictor.predict(items, terms="selected")
    shown = 0
    for whole, part in zip(full, lean, strict=True):
        assert part.kind == whole.kind and part.quality_score == whole.quality_score
        for topic, lean_topic in zip(whole.topics, part.topics, strict=True):
            assert (lean_topic.label, lean_topic.probability, lean_topic.selected) == (
                topic.label, topic.probability, topic.selected
            )
            assert lean_topic.terms == (topic.terms if topic.selected else [])
            shown += bool(topic.selected and topic.terms)
    assert shown >= 50  # the comparison covered real terms, not only empty lists
    with pytest.raises(ValueError, match="terms must be"):
        predictor.predict(items[:1], terms="some")
