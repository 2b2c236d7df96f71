"""Features for training: TF-IDF over words and characters, plus structure signals.

The union built here is fitted by the trainer; a saved model keeps only its
plain state (:mod:`model.state`), which :mod:`model.compiled` applies. The
structure signals themselves (length, 一是/二是, figures ...) live in
:mod:`model.structure`, which scoring uses without scikit-learn.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import StandardScaler

from model.structure import (  # noqa: F401 - the structure signals are part of the features' interface
    FEATURE_NAMES,
    PATTERNS,
    signal_of,
    structure_counts,
    structure_evidence,
    structure_vector,
)
from model.text import char_view, title_tokens, word_tokens


class StructureFeatures(TransformerMixin, BaseEstimator):
    """Dense structure features of documents (see :func:`structure_vector`); stateless."""

    def fit(self, documents: Iterable[str], y: object = None) -> StructureFeatures:
        self.n_features_out_ = len(FEATURE_NAMES)
        return self

    def transform(self, documents: Iterable[str]) -> np.ndarray:
        rows = [structure_vector(structure_counts(document)) for document in documents]
        return np.asarray(rows, dtype=np.float64).reshape(-1, len(FEATURE_NAMES))

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        return np.asarray(FEATURE_NAMES, dtype=object)


@dataclass(frozen=True)
class FeatureParams:
    """Settings of the feature union; the defaults are those of the default model.

    This is the one set of feature defaults: :func:`build_features` and the
    trainer's hyperparameters (``training.pipeline.DEFAULT_PARAMS``) both take
    them from here, and every model's manifest records the values it used.

    Attributes
    ----------
    word_ngrams, char_ngrams : tuple of int
        n-gram ranges over jieba words and over Chinese characters. Characters
        1-2, not 1-3: as good on held-out writers (macro F1 0.911 vs 0.908, kind
        accuracy 0.964 vs 0.959) with half the vocabulary, and faster.
    min_df : int
        Minimum document frequency of a term.
    max_features : int or None
        Cap on each vocabulary.
    sublinear_tf : bool
        Use 1 + log(tf).
    structure_weight : float
        Weight of the standardised structure block relative to TF-IDF.
    title_weight : float
        Weight of the title block: TF-IDF over the title's words alone (same
        n-grams as the words), so that what the title says counts apart from
        the body, as the guide reads it (a topic is a main subject when the
        title is about it; a 通知 or 意见 is a released policy, a 工作报告 a
        summing-up). 0 switches it off. By held-out source it raised mean kind
        accuracy from 0.905 to 0.972 and mean macro F1 from 0.828 to 0.841
        (``bench/by_source.py --variants default,no-title``, results in
        ``bench/results/by-source-2026-12-05-title.*``).
    use_words, use_chars, use_structure : bool
        Switch blocks off, for ablations. The structure block (length, 一是/二是,
        figures ...) is off: without it, leave-one-file-out kind accuracy rose
        from 0.964 to 0.982 and its Brier score fell from 0.028 to 0.013, topic
        macro F1 from 0.911 to 0.915. The words carry those cues already; the
        suggestions still count them (:mod:`model.suggestions`).
    """

    word_ngrams: tuple[int, int] = (1, 2)
    char_ngrams: tuple[int, int] = (1, 2)
    min_df: int = 2
    max_features: int | None = 200_000
    sublinear_tf: bool = True
    structure_weight: float = 0.3
    title_weight: float = 1.0
    use_words: bool = True
    use_chars: bool = True
    use_structure: bool = False


def build_features(**overrides: Any) -> FeatureUnion:
    """The feature union shared by the topic and kind heads.

    Parameters
    ----------
    **overrides
        Fields of :class:`FeatureParams` that differ from its defaults.

    Raises
    ------
    TypeError
        For a name that is not a field of :class:`FeatureParams`.
    """
    params = replace(FeatureParams(), **overrides)
    word_ngrams, char_ngrams = tuple(params.word_ngrams), tuple(params.char_ngrams)
    blocks: list[tuple[str, object]] = []
    shared = {"lowercase": False, "min_df": params.min_df, "max_features": params.max_features,
              "sublinear_tf": params.sublinear_tf, "dtype": np.float32}
    if params.use_words:
        words = TfidfVectorizer(tokenizer=word_tokens, token_pattern=None, ngram_range=word_ngrams, **shared)
        blocks.append(("words", words))
    if params.use_chars:
        chars = TfidfVectorizer(analyzer="char", preprocessor=char_view, ngram_range=char_ngrams, **shared)
        blocks.append(("chars", chars))
    weights = {}
    if params.title_weight:
        title = TfidfVectorizer(tokenizer=title_tokens, token_pattern=None, ngram_range=word_ngrams, **shared)
        blocks.append(("title", title))
        if params.title_weight != 1.0:
            weights["title"] = params.title_weight
    if params.use_structure:
        blocks.append(("structure", Pipeline([("counts", StructureFeatures()), ("scale", StandardScaler())])))
        weights["structure"] = params.structure_weight
    if not blocks:
        raise ValueError("at least one feature block must be switched on")
    return FeatureUnion(blocks, transformer_weights=weights or None)
