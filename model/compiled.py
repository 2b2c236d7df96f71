"""The compiled scoring path: the feature blocks of a model's plain state (:mod:`model.state`), applied fast.

At load, the Predictor compiles the vocabularies: n-grams become integer
keys looked up in numpy for a whole batch, so the per-call checks and
Python-level n-gram strings of scikit-learn are paid once per batch, not per
item, and scikit-learn is not needed at all. ``tests/model/test_predictor.py``
checks that the matrix equals the fitted union's own ``transform`` for every
feature setting.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from itertools import chain, repeat
from operator import add

import numpy as np
from scipy import sparse

from model.state import StructureBlock, TextBlock
from model.structure import structure_counts, structure_vector
from model.text import DEFAULT_ENGINE, char_view, cut, keeps_token, stop_words, title_view, word_tokens

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
    """One TF-IDF block (the state of a fitted TfidfVectorizer), applied without scikit-learn."""

    def __init__(self, block: TextBlock, offset: int, engine: str) -> None:
        self.engine = engine
        self.vocabulary: dict[str, int] = {term: offset + i for i, term in enumerate(block.terms)}
        self.idf = np.zeros(offset + len(block.terms), dtype=np.float64)
        self.idf[offset:] = block.idf
        self.low, self.high = block.ngram_range
        self.sublinear = block.sublinear_tf
        self.weight = block.weight
        self.is_chars = block.name == "chars"
        self.is_title = block.name == "title"  # words of the title alone
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
        if self.integer_keys or self.integer_words:
            self.vocabulary = {}  # only the string path looks terms up by name: a worker need not hold the dict
            self._index = _HashIndex(self.keys, self.key_ids)

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
        if self.is_title:
            documents = [title_view(document) for document in documents]
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
        features = self._index.find(grams)
        hits = np.flatnonzero(features >= 0)
        return features[hits], hits

    def _string_counts(self, document: str) -> tuple[np.ndarray, np.ndarray]:
        """Feature ids and counts by building n-gram strings, as scikit-learn does (any n-gram range)."""
        if self.is_chars:
            grams = _ngrams(_WHITE_SPACES.sub(" ", char_view(document)), self.low, self.high, "")
        else:
            grams = _ngrams(word_tokens(document), self.low, self.high, " ")
        ids = np.fromiter(map(self.vocabulary.get, grams, repeat(-1)), dtype=np.int64)
        return np.unique(ids[ids >= 0], return_counts=True)


class _HashIndex:
    """Non-negative int64 keys to int64 values, looked up for a whole array at once (open addressing).

    A binary search over a few hundred thousand keys costs some eighteen
    scattered reads per n-gram; a table at most half full costs one or two.
    Probing is done for every still-unresolved key together, so each round is
    a few numpy calls whatever the number of keys.
    """

    _EMPTY = -1
    _MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: spreads neighbouring keys apart

    def __init__(self, keys: np.ndarray, values: np.ndarray) -> None:
        bits = max(int(2 * len(keys) - 1).bit_length(), 4)
        self._shift = np.uint64(64 - bits)
        self._mask = (1 << bits) - 1
        self._keys = np.full(1 << bits, self._EMPTY, dtype=np.int64)
        self._values = np.full(1 << bits, -1, dtype=np.int64)
        pending = np.arange(len(keys))
        slots = self._slots(keys)
        while pending.size:
            free = self._keys[slots] == self._EMPTY
            # Of the keys that reach the same free slot in this round, the first takes it.
            taken, first = np.unique(slots[free], return_index=True)
            placed = pending[free][first]
            self._keys[taken] = keys[placed]
            self._values[taken] = values[placed]
            settled = np.zeros(len(pending), dtype=bool)
            settled[np.flatnonzero(free)[first]] = True
            pending, slots = pending[~settled], (slots[~settled] + 1) & self._mask

    def _slots(self, keys: np.ndarray) -> np.ndarray:
        return ((keys.astype(np.uint64) * self._MULTIPLIER) >> self._shift).astype(np.int64)

    def find(self, keys: np.ndarray) -> np.ndarray:
        """The value of each key, or -1 where the key is absent."""
        found = np.full(len(keys), -1, dtype=np.int64)
        pending = np.arange(len(keys))
        slots = self._slots(keys)
        while pending.size:
            stored = self._keys[slots]
            hit = stored == keys[pending]
            found[pending[hit]] = self._values[slots[hit]]
            going_on = ~hit & (stored != self._EMPTY)
            pending, slots = pending[going_on], (slots[going_on] + 1) & self._mask
        return found


class CompiledFeatures:
    """The feature blocks of a model, compiled for fast inference.

    ``engine`` is the segmentation engine the model was trained with; it is
    passed to every cut, so two models in one process never share a setting.

    ``transform`` gives the same matrix as the fitted union's own
    ``transform`` (to float rounding; a test checks it) at several times the
    speed, and also returns each document's structure counts, which the
    suggestions reuse.
    """

    def __init__(self, blocks: Sequence[TextBlock | StructureBlock], engine: str = DEFAULT_ENGINE) -> None:
        self.blocks: list[_TextBlock] = []
        self.structure: tuple[int, np.ndarray, np.ndarray, float] | None = None
        offset = 0
        for block in blocks:
            if isinstance(block, StructureBlock):
                self.structure = (offset, block.mean, block.scale, block.weight)
                offset += block.size
            else:
                self.blocks.append(_TextBlock(block, offset, engine))
                offset += len(block.terms)
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
