"""Features: TF-IDF over words and characters, plus structure signals.

The structure features are what an experienced editor looks at to tell a
news item from a comprehensive analysis: length, paragraphs, enumerations
(一是/二是, 第一, （一）), figures and percentages, comparisons, and the
vocabulary of problems, causes and suggestions. They also feed the
suggestions shown to editors (:mod:`model.suggestions`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from itertools import chain, repeat
from operator import add
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import StandardScaler

from model.text import DEFAULT_ENGINE, char_view, cut, keeps_token, stop_words, word_tokens

_NUM = r"[一二三四五六七八九十]"
PATTERNS: dict[str, re.Pattern[str]] = {
    "enumeration": re.compile(
        rf"{_NUM}是|第{_NUM}[，、,:：]|[（(]{_NUM}[）)]|(?:^|\n)\s*\d{{1,2}}[、.．]|首先|其次|再次|最后"
    ),
    "figures": re.compile(r"\d+(?:\.\d+)?"),
    "percentages": re.compile(r"%|％|百分点|成以上|倍"),
    "comparison": re.compile(r"同比|环比|比上年|较上年|比去年|较去年|增长|下降|增加|减少|提高|翻番"),
    "problems": re.compile(r"问题|不足|短板|困难|瓶颈|薄弱|滞后|制约|难点|矛盾|风险|缺乏|不够|偏低|偏少"),
    "causes": re.compile(r"原因|由于|导致|究其|因素|造成|源于"),
    "suggestions": re.compile(r"建议|对策|下一步|应当|着力|进一步|加快|强化|健全|完善|推动|加大"),
    "practice": re.compile(r"做法|经验|成效|机制|模式|举措|路径|探索|创新"),
    "event": re.compile(r"召开|举行|举办|出席|参加|会议|调研|考察|视察|检查|部署|签约仪式|座谈"),
}
_DATE_OPENING = re.compile(
    r"^(?:[^\n]*\n)?\s*(?:\d{4}年)?\d{1,2}月\d{1,2}日|^(?:[^\n]*\n)?\s*(?:近日|日前|昨日|今天|今日|当天)"
)
_SENTENCE = re.compile(r"[。！？!?；;]")

FEATURE_NAMES: tuple[str, ...] = (
    "log_chars",
    "log_paragraphs",
    "log_sentences",
    "date_opening",
    *(f"log_{name}" for name in PATTERNS),
    *(f"per_kchar_{name}" for name in PATTERNS),
)


def structure_evidence(document: str, signal: str, limit: int = 3) -> list[str]:
    """The strings of ``document`` behind a structure signal, for showing and highlighting.

    ``signal`` is a key of :data:`PATTERNS` or ``"date_opening"``.
    """
    if signal == "date_opening":
        match = _DATE_OPENING.search(document)
        return [match.group(0).split("\n")[-1].strip()] if match else []
    pattern = PATTERNS.get(signal)
    if pattern is None:
        return []
    found = [m.strip() for m in pattern.findall(document) if len(m.strip()) >= 2]
    return list(dict.fromkeys(found))[:limit]


def signal_of(feature: str) -> str:
    """The structure signal a feature name belongs to (``log_problems`` -> ``problems``)."""
    for prefix in ("log_", "per_kchar_"):
        if feature.startswith(prefix):
            return feature[len(prefix) :]
    return feature


def structure_counts(document: str) -> dict[str, int]:
    """Raw counts of the structure signals in one document."""
    counts = {name: len(pattern.findall(document)) for name, pattern in PATTERNS.items()}
    counts["chars"] = len(document)
    counts["paragraphs"] = document.count("\n") + 1
    counts["sentences"] = max(len(_SENTENCE.findall(document)), 1)
    counts["date_opening"] = int(_DATE_OPENING.search(document) is not None)
    return counts


def structure_vector(counts: dict[str, int]) -> list[float]:
    """The structure feature values of one document, in the order of :data:`FEATURE_NAMES`.

    Each signal is given as a log count and as a density per 1,000 characters,
    so that a long item with many figures and a short one with a few are both
    visible to a linear model.
    """
    kchars = max(counts["chars"], 1) / 1000.0
    return [
        math.log1p(counts["chars"]),
        math.log1p(counts["paragraphs"]),
        math.log1p(counts["sentences"]),
        float(counts["date_opening"]),
        *(math.log1p(counts[name]) for name in PATTERNS),
        *(min(counts[name] / kchars, 50.0) for name in PATTERNS),
    ]


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
    if params.use_structure:
        blocks.append(("structure", Pipeline([("counts", StructureFeatures()), ("scale", StandardScaler())])))
        weights["structure"] = params.structure_weight
    if not blocks:
        raise ValueError("at least one feature block must be switched on")
    return FeatureUnion(blocks, transformer_weights=weights or None)


_WHITE_SPACES = re.compile(r"\s\s+")
_BITS = 21  # every code point fits in 21 bits
_MAX_KEYED_N = 3  # three code points fill 63 bits of an int64
_UNKNOWN, _OUT_OF_VOCABULARY, _DROPPED = -3, -1, -2  # token ids that are not vocabulary entries
_SEPARATOR = "\x00"  # between the documents of a batch; normalisation removes it from text


def _gram_key(gram: str) -> int:
    key = 0
    for char in gram:
        key = (key << _BITS) | ord(char)
    return key


def _ngrams(units: Sequence[str], low: int, high: int, joiner: str) -> Iterable[str]:
    """n-grams of ``units`` from ``low`` to ``high``, as scikit-learn's analyzers make them."""
    streams: list[Iterable[str]] = []
    for n in range(low, min(high, len(units)) + 1):
        if n == 1:
            streams.append(units)
        elif n == 2 and not joiner:
            streams.append(map(add, units[:-1], units[1:]))
        else:
            streams.append(map(joiner.join, zip(*(units[k:] for k in range(n)), strict=False)))
    return chain.from_iterable(streams)


class _TextBlock:
    """The fitted state of one TfidfVectorizer, applied without scikit-learn's per-call checks."""

    def __init__(self, vectorizer: Any, offset: int, weight: float, engine: str) -> None:
        self.engine = engine
        self.vocabulary: dict[str, int] = {term: offset + int(i) for term, i in vectorizer.vocabulary_.items()}
        self.idf = np.zeros(offset + len(vectorizer.vocabulary_), dtype=np.float64)
        self.idf[offset:] = vectorizer.idf_
        self.low, self.high = vectorizer.ngram_range
        self.sublinear = vectorizer.sublinear_tf
        self.weight = weight
        self.is_chars = vectorizer.analyzer == "char"
        if vectorizer.norm != "l2" or vectorizer.lowercase or not vectorizer.use_idf:
            raise TypeError("the compiled path supports l2-normalised, idf-weighted, case-kept vectorizers")
        if self.is_chars and vectorizer.preprocessor is not char_view:
            raise TypeError("character features must be built on char_view")
        if not self.is_chars and vectorizer.tokenizer is not word_tokens:
            raise TypeError("word features must be built on word_tokens")
        self.integer_keys = self.is_chars and self.high <= _MAX_KEYED_N
        if self.integer_keys:
            # Character n-grams become integers (21 bits a code point), looked up
            # by binary search in numpy instead of building and hashing strings.
            keys = np.array([_gram_key(term) for term in self.vocabulary], dtype=np.int64)
            order = np.argsort(keys)
            self.keys = keys[order]
            self.key_ids = np.fromiter(self.vocabulary.values(), dtype=np.int64)[order]
        self.integer_words = not self.is_chars and (self.low, self.high) in ((1, 1), (1, 2), (2, 2))
        if self.integer_words:
            self._compile_words()

    def _compile_words(self) -> None:
        """Word uni- and bigrams as integers: a token id, or a pair of ids, looked up in numpy.

        Every token that occurs in the vocabulary, alone or in a bigram, gets
        an id, so that a bigram is found even where its tokens alone were cut
        from the vocabulary: the counts are exactly scikit-learn's.
        """
        tokens: dict[str, int] = {}
        for term in self.vocabulary:
            for token in term.split(" "):
                tokens.setdefault(token, len(tokens))
        self.token_count = len(tokens)
        for word in stop_words():
            tokens.setdefault(word, _DROPPED)
        tokens[_SEPARATOR] = _OUT_OF_VOCABULARY
        self.token_ids = tokens
        self._token_limit = len(tokens) + 100_000
        self.unigram_feature = np.full(self.token_count, -1, dtype=np.int64)
        pairs: list[tuple[int, int]] = []
        for term, feature in self.vocabulary.items():
            parts = term.split(" ")
            if len(parts) == 1:
                self.unigram_feature[tokens[term]] = feature
            else:
                pairs.append((tokens[parts[0]] * self.token_count + tokens[parts[1]], feature))
        pairs.sort()
        self.keys = np.array([key for key, _ in pairs], dtype=np.int64)
        self.key_ids = np.array([feature for _, feature in pairs], dtype=np.int64)

    def occurrences(self, documents: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Every vocabulary n-gram occurrence in a batch: (document index, feature id) pairs.

        The integer paths do the look-ups for the whole batch at once, so that
        numpy's per-call cost is paid per batch, not per document.
        """
        if self.integer_keys:
            return self._char_occurrences(documents)
        if self.integer_words:
            return self._word_occurrences(documents)
        rows, features = [], []
        for number, document in enumerate(documents):
            indices, frequencies = self._string_counts(document)
            rows.append(np.repeat(np.full(len(indices), number), frequencies))
            features.append(np.repeat(indices, frequencies))
        return _concat(rows), _concat(features)

    def _char_occurrences(self, documents: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        # char_view leaves single spaces only, so scikit-learn's white-space folding is a no-op here.
        texts = [char_view(document) for document in documents]
        # One array of code points for the batch, a 0 after each document. An
        # n-gram that touches a 0 is dropped, so none spans two documents.
        codes = np.frombuffer("\x00".join(texts).encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
        starts = np.repeat(np.arange(len(texts)), [len(text) + 1 for text in texts])[: len(codes)]
        zero = codes == 0
        rows, features = [], []
        for n in range(self.low, self.high + 1):
            span = len(codes) - n + 1
            if span <= 0:
                continue
            key = codes[:span].copy()
            bad = zero[:span].copy()
            for k in range(1, n):
                key = (key << _BITS) | codes[k : k + span]
                bad |= zero[k : k + span]
            found, positions = self._lookup_positions(key[~bad])
            rows.append(starts[:span][~bad][positions])
            features.append(found)
        return _concat(rows), _concat(features)

    def _word_occurrences(self, documents: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        tokens: list[str] = []
        lengths = []
        for document in documents:
            cut_tokens = cut(document, self.engine)
            tokens += cut_tokens
            tokens.append(_SEPARATOR)
            lengths.append(len(cut_tokens) + 1)
        ids = np.fromiter(map(self.token_ids.get, tokens, repeat(_UNKNOWN)), dtype=np.int64)
        for i in np.flatnonzero(ids == _UNKNOWN).tolist():
            token = tokens[i]
            ids[i] = _OUT_OF_VOCABULARY if keeps_token(token) else _DROPPED
            if ids[i] == _DROPPED and len(self.token_ids) < self._token_limit:
                self.token_ids[token] = _DROPPED  # remembered: punctuation and digits recur
        # Tokens word_tokens drops (stop words, punctuation, digits) must not stand
        # between two words: remove them, as word_tokens does. The separator
        # after each document is out of vocabulary: no bigram spans two documents.
        kept = ids != _DROPPED
        ids = ids[kept]
        starts = np.repeat(np.arange(len(documents)), lengths)[kept]
        rows, features = [], []
        if self.low == 1:
            unigrams = self.unigram_feature[np.maximum(ids, 0)]
            hit = (ids >= 0) & (unigrams >= 0)
            rows.append(starts[hit])
            features.append(unigrams[hit])
        if self.high == 2 and ids.size >= 2 and self.keys.size:
            first, second = ids[:-1], ids[1:]
            both = np.flatnonzero((first >= 0) & (second >= 0))
            found, positions = self._lookup_positions(first[both] * self.token_count + second[both])
            rows.append(starts[both][positions])
            features.append(found)
        return _concat(rows), _concat(features)

    def _lookup_positions(self, grams: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Feature ids of the keys found in the vocabulary, and where in ``grams`` they were."""
        if grams.size == 0 or self.keys.size == 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        positions = np.searchsorted(self.keys, grams)
        positions[positions == len(self.keys)] = 0
        hits = np.flatnonzero(self.keys[positions] == grams)
        return self.key_ids[positions[hits]], hits

    def _string_counts(self, document: str) -> tuple[np.ndarray, np.ndarray]:
        """Feature ids and counts by building n-gram strings, as scikit-learn does (any n-gram range)."""
        if self.is_chars:
            grams = _ngrams(_WHITE_SPACES.sub(" ", char_view(document)), self.low, self.high, "")
        else:
            grams = _ngrams(word_tokens(document), self.low, self.high, " ")
        ids = np.fromiter(map(self.vocabulary.get, grams, repeat(-1)), dtype=np.int64)
        return np.unique(ids[ids >= 0], return_counts=True)


class CompiledFeatures:
    """A fitted :func:`build_features` union, compiled for fast inference.

    ``engine`` is the segmentation engine the model was trained with; it is
    passed to every cut, so two models in one process never share a setting.

    ``transform`` gives the same matrix as the union's own ``transform`` (to
    float rounding; a test checks it) at several times the speed, and also
    returns each document's structure counts, which the suggestions reuse.
    """

    def __init__(self, union: FeatureUnion, engine: str = DEFAULT_ENGINE) -> None:
        weights = union.transformer_weights or {}
        self.blocks: list[_TextBlock] = []
        self.structure: tuple[int, np.ndarray, np.ndarray, float] | None = None
        offset = 0
        for name, transformer in union.transformer_list:
            weight = float(weights.get(name, 1.0))
            if name == "structure":
                scaler = transformer.named_steps["scale"]
                self.structure = (offset, scaler.mean_, scaler.scale_, weight)
                offset += len(FEATURE_NAMES)
            else:
                self.blocks.append(_TextBlock(transformer, offset, weight, engine))
                offset += len(transformer.vocabulary_)
        self.n_features = offset

    def transform(self, documents: Sequence[str]) -> tuple[sparse.csr_matrix, list[dict[str, int]]]:
        """Feature matrix (documents x features) and structure counts per document."""
        n = len(documents)
        counts = [structure_counts(document) for document in documents]
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (row, feature, value), row-sorted
        for block in self.blocks:
            rows, features = block.occurrences(documents)
            # Counting through a sparse matrix (C++: bucket by row, sort each short row) is
            # cheaper than sorting every (row, feature) key of the batch.
            counted = sparse.csr_matrix(
                (np.ones(len(rows)), (rows, features)), shape=(n, self.n_features)
            )
            counted.sum_duplicates()
            rows = np.repeat(np.arange(n), np.diff(counted.indptr))
            features = counted.indices.astype(np.int64)
            values = counted.data
            if block.sublinear:
                values = np.log(values) + 1.0
            values *= block.idf[features]
            norms = np.sqrt(np.bincount(rows, weights=values * values, minlength=n))
            values *= block.weight / norms[rows]
            parts.append((rows, features, values))
        if self.structure is not None:
            offset, mean, scale, weight = self.structure
            vectors = (np.array([structure_vector(c) for c in counts]).reshape(n, -1) - mean) / scale * weight
            width = vectors.shape[1]
            parts.append(
                (np.repeat(np.arange(n), width), np.tile(np.arange(offset, offset + width), n), vectors.ravel())
            )
        return _merge_rows(parts, n, self.n_features), counts


def _concat(arrays: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(arrays) if arrays else np.empty(0, dtype=np.int64)


def _merge_rows(
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]], n: int, width: int
) -> sparse.csr_matrix:
    """One CSR matrix from blocks of (row, feature, value) entries, each sorted by row then feature.

    Blocks hold increasing feature ranges, so each row is the blocks' pieces
    of that row one after another; entries are placed by arithmetic, not sorted.
    """
    per_block = [np.bincount(rows, minlength=n) for rows, _, _ in parts]
    sizes = np.sum(per_block, axis=0) if per_block else np.zeros(n, dtype=np.int64)
    indptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    indices = np.empty(indptr[-1], dtype=np.int64)
    data = np.empty(indptr[-1], dtype=np.float64)
    before = np.zeros(n, dtype=np.int64)  # entries of earlier blocks in each row
    for (rows, features, values), block_sizes in zip(parts, per_block, strict=True):
        block_starts = np.concatenate([[0], np.cumsum(block_sizes)[:-1]])
        positions = indptr[rows] + before[rows] + (np.arange(len(rows)) - block_starts[rows])
        indices[positions] = features
        data[positions] = values
        before += block_sizes
    return sparse.csr_matrix((data, indices, indptr), shape=(n, width))
