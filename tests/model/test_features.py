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
    assert [name for name, _ in union.transformer_list] == ["words", "chars"]
    words, chars = (transformer for _, transformer in union.transformer_list)
    assert words.ngram_range == defaults.word_ngrams == (1, 2)
    assert chars.ngram_range == defaults.char_ngrams == (1, 2)
    assert words.min_df == chars.min_df == defaults.min_df
    assert union.transformer_weights is None


def test_the_trainer_takes_its_feature_defaults_from_the_features() -> None:
    from training.pipeline import DEFAULT_PARAMS, merge_params

    assert DEFAULT_PARAMS["features"] == asdict(FeatureParams())
    assert merge_params({"features": {"use_structure": True}})["features"]["use_structure"] is True
    assert FeatureParams().use_structure is False


def test_overrides_switch_blocks_and_weights() -> None:
    union = build_features(use_words=False, use_structure=True, structure_weight=0.5)
    assert [name for name, _ in union.transformer_list] == ["chars", "structure"]
    assert union.transformer_weights == {"structure": 0.5}


def test_unknown_option_and_no_block_are_refused() -> None:
    with pytest.raises(TypeError, match="char_grams"):
        build_features(char_grams=(1, 3))
    with pytest.raises(ValueError, match="at least one feature block"):
        build_features(use_words=False, use_chars=False, use_structure=False)


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
