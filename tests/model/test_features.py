"""Feature building: one set of defaults, the blocks it switches, the structure signals."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest

from model.features import (
    FEATURE_NAMES,
    FeatureParams,
    StructureFeatures,
    build_features,
    signal_of,
    structure_counts,
    structure_evidence,
    structure_vector,
)

ANALYSIS = (
    "今年以来，全县新签约项目21个，同比增长23%。一是强化产业链招商；二是创新以商招商。\n"
    "目前仍存在要素保障不足等问题，主要原因是用地指标紧张。建议下一步建立项目台账。"
)


def test_the_default_union_is_the_default_models_features() -> None:
    union = build_features()
    defaults = FeatureParams()
    assert [name for name, _ in union.transformer_list] == ["words", "chars", "title"]
    words, chars, title = (transformer for _, transformer in union.transformer_list)
    assert words.ngram_range == title.ngram_range == defaults.word_ngrams == (1, 2)
    assert chars.ngram_range == defaults.char_ngrams == (1, 2)
    assert words.min_df == chars.min_df == title.min_df == defaults.min_df
    assert (union.transformer_weights or {}).get("title", 1.0) == defaults.title_weight


def test_the_title_block_counts_the_first_line_only() -> None:
    from model.text import join_document

    documents = [
        join_document("关于印发招商引资考核办法的通知", "各乡镇：现将办法印发给你们，请认真贯彻执行。乡村振兴工作另行部署。"),
        join_document("招商引资工作情况", "今年以来全县乡村振兴扎实推进，招商引资成效明显。"),
    ]
    union = build_features(use_chars=False, min_df=1)
    union.fit(documents)
    title = dict(union.transformer_list)["title"]
    assert "招商引资" in title.vocabulary_ and "通知" in title.vocabulary_
    assert "乡村振兴" not in title.vocabulary_ and "乡村振兴" in dict(union.transformer_list)["words"].vocabulary_
    # a document of one line has no title: its title block row is empty
    assert union.transform(["招商引资工作情况"])[:, -len(title.vocabulary_):].nnz == 0


def test_the_trainer_takes_its_feature_defaults_from_the_features() -> None:
    from training.pipeline import DEFAULT_PARAMS, merge_params

    assert DEFAULT_PARAMS["features"] == asdict(FeatureParams())
    assert merge_params({"features": {"use_structure": True}})["features"]["use_structure"] is True
    assert FeatureParams().use_structure is False


def test_overrides_switch_blocks_and_weights() -> None:
    union = build_features(use_words=False, use_structure=True, structure_weight=0.5, title_weight=0.0)
    assert [name for name, _ in union.transformer_list] == ["chars", "structure"]
    assert union.transformer_weights == {"structure": 0.5}
    union = build_features(title_weight=0.5)
    assert [name for name, _ in union.transformer_list] == ["words", "chars", "title"]
    assert union.transformer_weights == {"title": 0.5}


def test_unknown_option_and_no_block_are_refused() -> None:
    with pytest.raises(TypeError, match="char_grams"):
        build_features(char_grams=(1, 3))
    with pytest.raises(ValueError, match="at least one feature block"):
        build_features(use_words=False, use_chars=False, use_structure=False, title_weight=0.0)


def test_structure_counts_of_an_analysis() -> None:
    counts = structure_counts(ANALYSIS)
    assert counts["enumeration"] == 2 and counts["problems"] >= 1 and counts["causes"] >= 1
    assert counts["paragraphs"] == 2 and counts["date_opening"] == 0
    vector = structure_vector(counts)
    assert len(vector) == len(FEATURE_NAMES)
    assert vector[FEATURE_NAMES.index("log_enumeration")] == pytest.approx(np.log1p(2))
    assert structure_evidence(ANALYSIS, "enumeration") == ["一是", "二是"]
    assert structure_evidence("3月5日，县委召开会议。", "date_opening") == ["3月5日"]
    assert signal_of("per_kchar_problems") == "problems"


def test_structure_features_transform_documents_row_by_row() -> None:
    block = StructureFeatures().fit([ANALYSIS])
    matrix = block.transform([ANALYSIS, "短讯"])
    assert matrix.shape == (2, len(FEATURE_NAMES))
    assert list(block.get_feature_names_out()) == list(FEATURE_NAMES)
