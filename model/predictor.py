"""The Predictor: one loaded model version, scoring one or many items.

Every consumer (the API, batch scoring, evaluation, the command line) calls
:meth:`Predictor.predict`, so the numbers are the same everywhere.

Scoring computes the shared features once per batch and then evaluates every
head as one sparse-dense product followed by its sigmoid calibration. The
weights are the model's plain state (:mod:`model.state`), read out of the
fitted scikit-learn estimators after training or from a version's JSON and
``.npz`` files; ``tests/model/test_predictor.py`` checks that the result
equals the estimators' own ``predict_proba``, before and after saving.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse

from model.artifact import load_state
from model.compiled import CompiledFeatures
from model.errors import ArtifactError, InvalidItemError
from model.labels import POSITIVE_KIND, describe, kind_of
from model.state import ModelState, TextBlock
from model.structure import FEATURE_NAMES, signal_of, structure_evidence
from model.suggestions import suggest
from model.text import DEFAULT_ENGINE, MAX_CHARS, document_parts, has_chinese, join_normalized, segmenter

TOP_TERMS = 5
_EXPLAIN_CELLS = 2_000_000
"""At most this many (head, row, entry) cells are ranked at once when explanations are computed for a batch."""
BATCH_SIZE = 256
"""Items per :meth:`Predictor.predict` call when a caller scores many (files, evaluation)."""


@dataclass
class TopicScore:
    label: str
    name: str
    probability: float
    selected: bool
    terms: list[str]


@dataclass
class KindScore:
    label: str
    name: str
    probability: float
    analysis_probability: float
    terms: list[str]


@dataclass
class Prediction:
    """The result for one item, in the shape the API and files use."""

    id: str | None
    topics: list[TopicScore]
    kind: KindScore | None
    quality_score: int | None
    grade: str | None
    suggestions: list[str]
    warnings: list[str] = field(default_factory=list)
    confidence: str = "normal"
    model_version: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Predictor:
    """Scores items with one model version.

    Parameters
    ----------
    state : ModelState or dict
        The model as plain data (:class:`model.state.ModelState`, what
        :meth:`load` reads), or the trainer's fitted bundle (``topics`` and
        optionally ``kind`` pipelines sharing one ``features`` step,
        ``topic_labels`` and ``mode``), from which that state is read.
    manifest : dict
        The version's manifest; its ``thresholds`` (label: threshold) are the
        one record of each topic's threshold.

    Use :meth:`load` to read a version directory; it verifies checksums first
    and builds no scikit-learn object.
    """

    def __init__(self, state: ModelState | Mapping[str, Any], manifest: Mapping[str, Any]) -> None:
        if not isinstance(state, ModelState):
            state = ModelState.from_fitted(state)
        self.manifest = dict(manifest)
        self.version: str = self.manifest.get("version", "unsaved")
        self.topic_labels: list[str] = list(state.topic_labels)
        self._topic_names = [describe(label).name for label in self.topic_labels]
        self.mode: str = state.mode
        self.thresholds = _thresholds(self.manifest, self.topic_labels)
        self.engine: str = (self.manifest.get("segmenter") or {}).get("engine", DEFAULT_ENGINE)
        self._compiled = CompiledFeatures(state.blocks, self.engine)
        self._topics = state.topics
        self._kind = state.kind
        term_names, self._term_mask = _explainable_terms(state)
        self._term_names: list[str] = term_names.tolist()
        self._structure_slice: tuple[int, tuple[str, ...]] | None = None
        if self._compiled.structure is not None:
            self._structure_slice = (self._compiled.structure[0], FEATURE_NAMES)
        # Every head's weights in one array, so terms for all heads come from one gather.
        self._explain_weights = self._topics.weights
        self._explain_signs = -np.sign(self._topics.slopes)
        if self._kind is not None:
            self._explain_weights = np.vstack([self._topics.weights, self._kind.weights])
            self._explain_signs = np.append(self._explain_signs, -np.sign(self._kind.slopes[0]))

    @classmethod
    def load(cls, directory: str | Path) -> Predictor:
        """Verify and load a model version directory (JSON and ``.npz`` only: nothing in it can run code)."""
        state, manifest = load_state(Path(directory))
        predictor = cls(state, manifest)
        segmenter(predictor.engine)  # load its dictionary now, not on the first request
        return predictor

    @property
    def has_kind(self) -> bool:
        return self._kind is not None

    def _top_terms(
        self, matrix: sparse.csr_matrix, analysis: np.ndarray | None, wanted: np.ndarray | None = None
    ) -> list[list[list[str]]]:
        """For each item and head, the terms of its text that pushed hardest towards that head (largest x * w).

        ``wanted`` (items x heads, booleans) limits the terms to those heads; the
        others get no terms. A wanted head's terms are the same either way.

        The whole batch is ranked at once: the explainable entries of every row
        are laid out in a (heads x rows x longest row) array and the best ten
        per row and head are found with one ``argpartition``; only those short
        candidate lists are walked in Python, to drop overlapping terms. Rows
        are taken in groups so that the array stays small when one text is long.
        """
        heads = len(self._explain_signs)
        n = matrix.shape[0]
        signs = np.tile(self._explain_signs, (n, 1))
        if self._kind is not None and analysis is not None:
            signs[analysis < 0.5, -1] *= -1  # for a news item, the terms that pushed towards news
        lengths = np.diff(matrix.indptr)
        rows = np.repeat(np.arange(n), lengths)
        keep = self._term_mask[matrix.indices]
        rows, columns, values = rows[keep], matrix.indices[keep], matrix.data[keep]
        counts = np.bincount(rows, minlength=n)
        found: list[list[list[str]]] = []
        start = 0
        while start < n:
            stop = start + 1
            widest = int(counts[start])
            while stop < n and heads * (stop + 1 - start) * max(widest, int(counts[stop])) <= _EXPLAIN_CELLS:
                widest = max(widest, int(counts[stop]))
                stop += 1
            inside = slice(*np.searchsorted(rows, [start, stop]))
            found += self._group_top_terms(
                rows[inside] - start, columns[inside], values[inside], counts[start:stop], signs[start:stop],
                None if wanted is None else wanted[start:stop],
            )
            start = stop
        return found

    def _group_top_terms(
        self, rows: np.ndarray, columns: np.ndarray, values: np.ndarray, counts: np.ndarray, signs: np.ndarray,
        wanted: np.ndarray | None,
    ) -> list[list[list[str]]]:
        heads, n = signs.shape[1], len(counts)
        width = int(counts.max()) if n else 0
        if width == 0:
            return [[[] for _ in range(heads)] for _ in range(n)]
        positions = np.arange(len(rows)) - np.concatenate([[0], np.cumsum(counts)[:-1]])[rows]
        contributions = self._explain_weights[:, columns] * values * signs[rows].T  # heads x entries
        grid = np.zeros((heads, n, width))
        grid[:, rows, positions] = -contributions
        features = np.zeros((n, width), dtype=np.int64)
        features[rows, positions] = columns
        # Equal contributions are common (n-grams that always occur together get equal weights), so which
        # of them is shown depends on how they are partitioned: each row is partitioned exactly as one item
        # alone would be, over its own entries only; ranking and the rest are done for all rows at once.
        most = 2 * TOP_TERMS
        best = np.zeros((heads, n, most), dtype=np.int64)
        missing = np.zeros((n, most), dtype=bool)
        for i, count in enumerate(counts.tolist()):
            candidates = min(most, count)
            if candidates:
                best[:, i, :candidates] = np.argpartition(grid[:, i, :count], candidates - 1, axis=1)[:, :candidates]
            missing[i, candidates:] = True
        scores = -np.take_along_axis(grid, best, axis=2)
        scores[:, missing] = -np.inf  # after every real candidate in the stable sort below, and never positive
        order = np.argsort(-scores, axis=2, kind="stable")
        best = np.take_along_axis(best, order, axis=2)
        positive = (np.take_along_axis(scores, order, axis=2) > 0).transpose(1, 0, 2).tolist()
        candidates = features[np.arange(n)[None, :, None], best].transpose(1, 0, 2).tolist()
        shown = [[True] * heads] * n if wanted is None else wanted.tolist()
        names = self._term_names
        found = []
        for row_candidates, row_positive, row_shown in zip(candidates, positive, shown, strict=True):
            row_terms = []
            for head_candidates, head_positive, head_shown in zip(
                row_candidates, row_positive, row_shown, strict=True
            ):
                terms: list[str] = []
                if not head_shown:
                    row_terms.append(terms)
                    continue
                for feature, keep in zip(head_candidates, head_positive, strict=True):
                    if not keep:
                        break
                    term = names[feature]
                    for kept in terms:  # a plain loop: cheaper than any() over at most five terms
                        if term in kept or kept in term:
                            break
                    else:
                        terms.append(term)
                        if len(terms) == TOP_TERMS:
                            break
                row_terms.append(terms)
            found.append(row_terms)
        return found

    def _kind_terms(
        self, document: str, row: tuple[np.ndarray, np.ndarray], words: list[str], towards_analysis: bool
    ) -> list[str]:
        """Terms behind the kind: first the text's own evidence of the structure signals
        that pushed towards the chosen kind (一是, 问题, 建议, an opening date ...), then words."""
        assert self._kind is not None
        if self._structure_slice is None:
            return words
        start, names = self._structure_slice
        indices, values = row
        inside = (indices >= start) & (indices < start + len(names))
        sign = -np.sign(self._kind.slopes[0]) * (1.0 if towards_analysis else -1.0)
        totals: dict[str, float] = {}
        for index, value in zip(indices[inside].tolist(), values[inside].tolist(), strict=True):
            signal = signal_of(names[index - start])
            totals[signal] = totals.get(signal, 0.0) + sign * value * float(self._kind.weights[0, index])
        evidence: list[str] = []
        for signal, total in sorted(totals.items(), key=lambda pair: -pair[1]):
            if total <= 0 or len(evidence) >= TOP_TERMS:
                break
            evidence += [e for e in structure_evidence(document, signal, limit=2) if e not in evidence]
        merged = evidence[:TOP_TERMS]
        merged += [w for w in words if not any(w in e or e in w for e in merged)]
        return merged[:TOP_TERMS]

    def predict(self, items: Sequence[Mapping[str, Any]], terms: str = "all") -> list[Prediction]:
        """Score items given as mappings with ``text`` and optional ``id`` and ``title``.

        ``terms="selected"`` gives terms only for the selected topics and the
        kind (what a scored file shows), and none for the other topics; it is
        faster, and those terms are the same as with ``"all"``.

        Raises
        ------
        InvalidItemError
            If an item is not a mapping, or its text is missing, not a string
            or empty; the message names the item.
        """
        documents, warnings, ids = _prepare_all(items)
        if not documents:
            return []
        matrix, counts = self._compiled.transform(documents)
        if terms not in ("all", "selected"):
            raise ValueError(f"terms must be 'all' or 'selected', not {terms!r}")
        topic_probabilities = self._topics.probabilities(matrix)
        kind_probabilities = self._kind.probabilities(matrix)[:, 0] if self._kind is not None else None
        selected = self._selected(topic_probabilities, documents)
        wanted = None
        if terms == "selected":
            wanted = selected if self._kind is None else np.hstack([selected, np.ones((len(documents), 1), bool)])
        found = self._top_terms(matrix, kind_probabilities, wanted)
        return [
            self._result(
                ids[i], documents[i], _row(matrix, i), counts[i], topic_probabilities[i], selected[i],
                None if kind_probabilities is None else float(kind_probabilities[i]), warnings[i], found[i],
            )
            for i in range(len(documents))
        ]

    def _selected(self, probabilities: np.ndarray, documents: Sequence[str]) -> np.ndarray:
        """Which topics each item is tagged with (items x topics): over its threshold, or the most probable
        in multiclass mode; none for a text without Chinese."""
        if self.mode == "multiclass":
            selected = np.zeros(probabilities.shape, dtype=bool)
            selected[np.arange(len(probabilities)), np.argmax(probabilities, axis=1)] = True
        else:
            selected = probabilities >= self.thresholds
        selected[[not has_chinese(document) for document in documents]] = False
        return selected

    def predict_batched(
        self,
        items: Sequence[Mapping[str, Any]],
        batch_size: int = BATCH_SIZE,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[Prediction]:
        """:meth:`predict` over many items, ``batch_size`` at a time, in order.

        ``progress(done, total)`` is called after each batch.
        """
        predictions: list[Prediction] = []
        for start in range(0, len(items), batch_size):
            predictions += self.predict(items[start : start + batch_size])
            if progress is not None:
                progress(len(predictions), len(items))
        return predictions

    def transform(self, items: Sequence[Mapping[str, Any]]) -> sparse.csr_matrix:
        """The feature matrix (items x features) the heads see for ``items``; validates as :meth:`predict`."""
        documents, _, _ = _prepare_all(items)
        return self._compiled.transform(documents)[0]

    def probabilities(self, items: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray | None]:
        """Unrounded topic probabilities (items x topics) and analysis probabilities (None without a kind head)."""
        matrix = self.transform(items)
        kind = self._kind.probabilities(matrix)[:, 0] if self._kind is not None else None
        return self._topics.probabilities(matrix), kind

    def predict_one(self, text: str, title: str | None = None, id: str | None = None) -> Prediction:
        """Score a single item."""
        return self.predict([{"id": id, "title": title, "text": text}])[0]

    def _result(
        self,
        item_id: str | None,
        document: str,
        row: tuple[np.ndarray, np.ndarray],
        counts: dict[str, int],
        probabilities: np.ndarray,
        selected: np.ndarray,
        analysis: float | None,
        warnings: list[str],
        terms: list[list[str]],
    ) -> Prediction:
        chinese = has_chinese(document)
        if not chinese:
            warnings.append("文本不含中文，结果可信度低 (no Chinese text: low confidence)")
        analysis_head = self._kind is not None and analysis is not None
        # Python floats and bools once per item (tolist), not a numpy scalar per topic.
        topics = [
            TopicScore(label=label, name=name, probability=round(probability, 4), selected=chosen, terms=label_terms)
            for label, name, probability, chosen, label_terms in zip(
                self.topic_labels, self._topic_names, probabilities.tolist(), selected.tolist(), terms, strict=False
            )
        ]
        kind = None
        score = None
        grade = None
        suggestions: list[str] = []
        if analysis_head and analysis is not None:
            chosen = kind_of(analysis)
            kind = KindScore(
                label=chosen.label,
                name=chosen.name,
                probability=round(analysis if chosen.label == POSITIVE_KIND else 1 - analysis, 4),
                analysis_probability=round(analysis, 4),
                terms=self._kind_terms(document, row, terms[-1], analysis >= 0.5),
            )
            score = int(round(100 * analysis))
            grade = chosen.name
            suggestions = suggest(counts, score)
        return Prediction(
            id=item_id,
            topics=topics,
            kind=kind,
            quality_score=score,
            grade=grade,
            suggestions=suggestions,
            warnings=warnings,
            confidence="normal" if chinese else "low",
            model_version=self.version,
        )


def _explainable_terms(state: ModelState) -> tuple[np.ndarray, np.ndarray]:
    """Display names of the features, and which of them may be shown as terms.

    Words (and word bigrams, shown without the space) of two or more
    characters, of the body or the title, are what an editor can read; character n-grams are used
    only by a model that has no word features.
    """
    blocks = [block.name for block in state.blocks if isinstance(block, TextBlock)]
    shown = "words" if "words" in blocks else "chars"
    names: list[str] = []
    mask: list[bool] = []
    for block in state.blocks:
        if not isinstance(block, TextBlock):
            names += [""] * block.size
            mask += [False] * block.size
            continue
        for term in block.terms:
            # A character n-gram with a space spans punctuation or digits: not a term.
            display = term.replace(" ", "")
            names.append(display)
            readable = block.name == shown or (block.name == "title" and shown == "words")
            mask.append(readable and len(display) >= 2 and not (block.name == "chars" and " " in term))
    return np.asarray(names, dtype=object), np.asarray(mask, dtype=bool)


def _thresholds(manifest: Mapping[str, Any], labels: Sequence[str]) -> np.ndarray:
    """Each topic's threshold, in label order, from the manifest (the one place they are stored)."""
    recorded = manifest.get("thresholds")
    if not isinstance(recorded, Mapping) or sorted(recorded) != sorted(labels):
        count = len(recorded) if isinstance(recorded, Mapping | list) else 0
        raise ArtifactError(
            f"model {manifest.get('version', 'unsaved')}: {count} thresholds for {len(labels)} topic labels "
            "(a version saved before thresholds moved to the manifest alone needs retraining with `xinxi train`)"
        )
    return np.asarray([float(recorded[label]) for label in labels], dtype=np.float64)


def _row(matrix: sparse.csr_matrix, i: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of row ``i`` of a CSR matrix, without building a matrix for it."""
    start, end = matrix.indptr[i], matrix.indptr[i + 1]
    return matrix.indices[start:end], matrix.data[start:end]


def _prepare_all(items: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[str]], list[str | None]]:
    """Documents, warnings and ids of a batch of items, in order."""
    documents, warnings, ids = [], [], []
    for position, item in enumerate(items):
        document, item_warnings = _prepare(item, position)
        documents.append(document)
        warnings.append(item_warnings)
        ids.append(None if item.get("id") is None else str(item.get("id")))
    return documents, warnings, ids


def _prepare(item: Any, position: int) -> tuple[str, list[str]]:
    """Validate one item and build its document; returns it with its warnings."""
    if not isinstance(item, Mapping):
        raise InvalidItemError(f"item {position + 1}: expected an object with a text, got {type(item).__name__}")
    name = f"item {position + 1}" + (f" (id {item.get('id')})" if item.get("id") is not None else "")
    text = item.get("text")
    title = item.get("title")
    if text is None:
        raise InvalidItemError(f"{name}: text is missing")
    if not isinstance(text, str):
        raise InvalidItemError(f"{name}: text must be a string, got {type(text).__name__}")
    if title is not None and not isinstance(title, str):
        raise InvalidItemError(f"{name}: title must be a string, got {type(title).__name__}")
    warnings = []
    if len(text) > MAX_CHARS:
        warnings.append(
            f"正文超过 {MAX_CHARS} 字，只分析前 {MAX_CHARS} 字 "
            f"(text has {len(text)} characters; only the first {MAX_CHARS} were used)"
        )
    if not text[:MAX_CHARS].strip():
        raise InvalidItemError(f"{name}: text is empty")
    title, body = document_parts(title, text)
    if not body:
        raise InvalidItemError(f"{name}: text is empty once control characters and markup are removed")
    return join_normalized(title, body), warnings
