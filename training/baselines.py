"""The methods that :mod:`training.compare` sets side by side: xinxi and the baselines a user could use instead.

Methods
-------
``xinxi``
    The product pipeline itself: :func:`training.trainer.fit_model` on the
    training part (with its own inner cross-validation for the thresholds),
    then :class:`model.Predictor` on the held-out part.
``sklearn-baseline``
    Character 1-3-gram TF-IDF and scikit-learn's default LogisticRegression
    (one-vs-rest at 0.5 for topics, multinomial for single-label data).
``keyword-rules``
    What an office would do by hand: a keyword list per topic taken from the
    domain dictionary's groups and the label definitions of ANNOTATION.md,
    and an enumeration / problems / suggestions rule for the kind. Labels
    without a definition (other corpora) get the 30 words most specific to
    them in the training part, as a person reading examples would pick.
``fasttext``
    fastText (supervised, word bigrams, over the same segmentation) when the
    optional ``fasttext`` extra is installed; otherwise reported as skipped.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from model.features import structure_counts
from model.labels import KIND_NAMES, POSITIVE_KIND, TOPICS
from model.predictor import Prediction, Predictor
from model.text import user_dictionary, word_tokens
from model.uncertainty import prediction_priority
from training.data import Item
from training.dataset import SEED_SOURCE, Dataset
from training.errors import TrainingError
from training.trainer import fit_model

METHODS: tuple[str, ...] = ("xinxi", "sklearn-baseline", "keyword-rules", "fasttext")
SEED_ONLY = "xinxi-seed-only"
"""xinxi trained on the seed corpus alone: the reference beside the default model when sources are held out."""


@dataclass
class Scores:
    """What a method says about held-out items."""

    probabilities: np.ndarray  # items x labels: a score in [0, 1] per topic
    selected: np.ndarray  # items x labels: 0/1 decisions
    analysis: np.ndarray | None  # probability of `analysis` per item, if the method scores kind
    predictions: list[Prediction] | None = None  # xinxi only: the Predictor's full output


class Method:
    """A classifier that can be trained on one part of a :class:`Dataset` and score another."""

    name = ""

    def available(self) -> str | None:
        """None when the method can run here; else the reason it is skipped."""
        return None

    def fit(self, data: Dataset, train: np.ndarray) -> None:
        raise NotImplementedError

    def score(self, data: Dataset, test: np.ndarray) -> Scores:
        raise NotImplementedError


def _argmax_rows(probabilities: np.ndarray) -> np.ndarray:
    selected = np.zeros(probabilities.shape, dtype=np.int8)
    selected[np.arange(len(probabilities)), np.argmax(probabilities, axis=1)] = 1
    return selected


class XinxiMethod(Method):
    """The product pipeline: ``fit_model`` then :class:`Predictor` on held-out items.

    With ``only_source`` it trains on the training items of that source alone
    (``xinxi-seed-only``: the model as it was before real items, for comparison).
    """

    name = "xinxi"

    def __init__(
        self, *, seed: int = 0, inner_folds: int = 3, params: dict[str, Any] | None = None,
        only_source: str | None = None,
    ) -> None:
        self.seed = seed
        self.inner_folds = inner_folds
        params = dict(params or {})
        # Evaluation-only options: what the model may see of the items it is not trained on
        # (their text, never their labels), as an office's unlabelled archive would be seen.
        self.unlabelled: dict[str, Any] = dict(params.pop("unlabelled", {}) or {})
        self.params = params or None
        self.only_source = only_source
        if only_source is not None:
            self.name = f"xinxi-{only_source}-only"

    def fit(self, data: Dataset, train: np.ndarray) -> None:
        if self.only_source is not None:
            train = np.asarray([i for i in train if data.items[i].source == self.only_source], dtype=int)
            if not len(train):
                raise TrainingError(f"{self.name}: no training item has the source {self.only_source!r}")
            previous = getattr(self, "trained_on_", None)
            if previous is not None and np.array_equal(train, previous):
                return  # every held-out source leaves the same seed items: one fit serves them all
            self.trained_on_ = train
        items = [data.items[i] for i in train]
        if not data.has_kind:
            # The trainer trains the kind head only on complete kind labels; hide partial ones.
            items = [Item(id=it.id, text=it.text, title=it.title, topics=it.topics, row=it.row) for it in items]
        rest = np.setdiff1d(np.arange(len(data)), train)
        unlabelled = [data.documents[i] for i in rest] if self.unlabelled.get("idf") else []
        bundle, manifest = fit_model(
            items, seed=self.seed, folds=self.inner_folds, labels=data.labels, params=self.params, min_examples=2,
            unlabelled=unlabelled,
        )
        self.predictor_ = Predictor(bundle, manifest)
        margin = self.unlabelled.get("self_training")
        if margin and len(rest):
            pseudo = self._pseudo_labelled(data, rest, float(margin))
            if pseudo:
                bundle, manifest = fit_model(
                    items + pseudo, seed=self.seed, folds=self.inner_folds, labels=data.labels, params=self.params,
                    min_examples=2, unlabelled=unlabelled,
                )
                self.predictor_ = Predictor(bundle, manifest)

    def _pseudo_labelled(self, data: Dataset, rest: np.ndarray, margin: float) -> list[Item]:
        """Items of ``rest`` the first model is sure of (every label ``margin`` log-odds from its cut), as it tags them.

        Their source stays the held-out one, so thresholds chosen on held-out
        sources never see their own pseudo-labels.
        """
        predictions = self.predictor_.predict_batched([data.items[i].as_input() for i in rest])
        priority = prediction_priority(predictions, self.predictor_.thresholds)
        sure = priority <= 1.0 / (1.0 + margin)
        pseudo = []
        for i, prediction, keep in zip(rest, predictions, sure, strict=True):
            if not keep:
                continue
            item = data.items[i]
            pseudo.append(
                Item(
                    id=f"pseudo-{item.id}", text=item.text, title=item.title, source=item.source, row=item.row,
                    topics=[t.label for t in prediction.topics if t.selected],
                    kind=prediction.kind.label if prediction.kind is not None and data.has_kind else None,
                )
            )
        return pseudo

    def score(self, data: Dataset, test: np.ndarray) -> Scores:
        predictions = self.predictor_.predict_batched([data.items[i].as_input() for i in test])
        probabilities = np.array([[t.probability for t in p.topics] for p in predictions])
        selected = np.array([[int(t.selected) for t in p.topics] for p in predictions], dtype=np.int8)
        analysis = None
        if data.has_kind and self.predictor_.has_kind:
            analysis = np.array([p.kind.analysis_probability if p.kind else 0.5 for p in predictions])
        return Scores(probabilities, selected, analysis, predictions)


class SklearnBaseline(Method):
    """Character 1-3-gram TF-IDF with scikit-learn's default LogisticRegression."""

    name = "sklearn-baseline"

    def __init__(self, *, seed: int = 0) -> None:
        self.seed = seed

    def fit(self, data: Dataset, train: np.ndarray) -> None:
        self.vectorizer_ = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), min_df=2)
        matrix = self.vectorizer_.fit_transform([data.documents[i] for i in train])
        truth = data.truth[train]
        if data.multiclass:
            self.topics_: Any = LogisticRegression(max_iter=1000, random_state=self.seed).fit(
                matrix, np.argmax(truth, axis=1)
            )
        else:
            self.topics_ = [
                LogisticRegression(max_iter=1000, random_state=self.seed).fit(matrix, truth[:, j])
                if 0 < truth[:, j].sum() < len(truth)
                else float(truth[:, j].mean())
                for j in range(truth.shape[1])
            ]
        self.kind_ = None
        if data.has_kind:
            self.kind_ = LogisticRegression(max_iter=1000, random_state=self.seed).fit(matrix, data.is_analysis[train])

    def score(self, data: Dataset, test: np.ndarray) -> Scores:
        matrix = self.vectorizer_.transform([data.documents[i] for i in test])
        if data.multiclass:
            probabilities = np.zeros((len(test), len(data.labels)))
            probabilities[:, self.topics_.classes_] = self.topics_.predict_proba(matrix)
            selected = _argmax_rows(probabilities)
        else:
            probabilities = np.column_stack(
                [
                    m.predict_proba(matrix)[:, 1] if hasattr(m, "predict_proba") else np.full(len(test), m)
                    for m in self.topics_
                ]
            )
            selected = (probabilities >= 0.5).astype(np.int8)
        analysis = self.kind_.predict_proba(matrix)[:, 1] if self.kind_ is not None else None
        return Scores(probabilities, selected, analysis)


# Keyword lists a county office would write by hand, one per topic: the groups
# of the domain dictionary (model/resources/userdict.txt) that belong to the
# topic, plus the phrases of its definition in ANNOTATION.md (model/labels.py).
DICTIONARY_GROUPS: dict[str, tuple[str, str]] = {
    # topic: (first, last) term of its group in the dictionary file
    "investment": ("招商引资", "链式招商"),
    "rural": ("乡村振兴", "四好农村路"),
    "industry": ("规上企业", "亩均效益"),
    "hot_issue": ("热点难点", "低保"),
    "emergency": ("突发事件", "群体性事件"),
}
_GENERIC = {"同比增长", "环比增长", "百分点", "重点项目", "项目建设", "热点难点"}
_PHRASE_SPLIT = re.compile(r"[、，,；;与及和]")


def rule_keywords() -> dict[str, list[str]]:
    """The hand keyword list of each ANNOTATION.md topic (see :data:`DICTIONARY_GROUPS`)."""
    terms = list(user_dictionary())
    keywords: dict[str, list[str]] = {}
    for topic in TOPICS:
        words: list[str] = []
        if topic.label in DICTIONARY_GROUPS:
            first, last = DICTIONARY_GROUPS[topic.label]
            if first in terms and last in terms:
                words += [t for t in terms[terms.index(first) : terms.index(last) + 1] if t not in _GENERIC]
        words += [p.strip() for p in _PHRASE_SPLIT.split(topic.definition) if 2 <= len(p.strip()) <= 6]
        keywords[topic.label] = list(dict.fromkeys(words))
    return keywords


class KeywordRules(Method):
    """Keyword counting per topic and a structure rule for the kind; no learning for known labels.

    A topic is selected when a keyword is in the title or at least
    ``body_hits`` keyword occurrences are in the body. Single-label data
    takes the topic with most hits.
    """

    name = "keyword-rules"

    def __init__(self, *, body_hits: int = 3, mined_terms: int = 30) -> None:
        self.body_hits = body_hits
        self.mined_terms = mined_terms

    def fit(self, data: Dataset, train: np.ndarray) -> None:
        known = rule_keywords()
        self.keywords_: dict[str, list[str]] = {}
        unknown = [label for label in data.labels if label not in known]
        if unknown:
            self.keywords_.update(self._mine(data, train, unknown))
        for label in data.labels:
            if label in known:
                self.keywords_[label] = known[label]
        counts = data.truth[train].sum(axis=0)
        self.fallback_ = int(np.argmax(counts))

    def _mine(self, data: Dataset, train: np.ndarray, labels: list[str]) -> dict[str, list[str]]:
        """Words most specific to each label in the training part (for labels with no definition)."""
        vectorizer = CountVectorizer(tokenizer=word_tokens, token_pattern=None, lowercase=False, min_df=3, binary=True)
        matrix = vectorizer.fit_transform([data.documents[i] for i in train])
        vocabulary = vectorizer.get_feature_names_out()
        document_frequency = np.asarray(matrix.sum(axis=0)).ravel()
        mined: dict[str, list[str]] = {}
        for label in labels:
            j = data.labels.index(label)
            positive = data.truth[train, j] == 1
            if not positive.any():
                mined[label] = []
                continue
            inside = np.asarray(matrix[positive].sum(axis=0)).ravel()
            # precision of the word for the label, weighted by how often it occurs there
            precision = inside / np.maximum(document_frequency, 1)
            rank = precision * np.log1p(inside)
            order = np.argsort(-rank, kind="stable")[: self.mined_terms]
            mined[label] = [str(vocabulary[k]) for k in order if inside[k] > 0]
        return mined

    def _hits(self, document: str) -> np.ndarray:
        title, _, body = document.partition("\n")
        if not body:
            title, body = "", document
        row = []
        for label in self.keywords_order_:
            words = self.keywords_[label]
            in_title = sum(1 for w in words if w in title)
            in_body = sum(body.count(w) for w in words)
            row.append((in_title, in_body))
        return np.array(row, dtype=np.float64)

    def score(self, data: Dataset, test: np.ndarray) -> Scores:
        self.keywords_order_ = list(data.labels)
        hits = np.zeros((0, len(data.labels), 2))
        if len(test):
            hits = np.stack([self._hits(data.documents[i]) for i in test])
        strength = 2.0 * hits[:, :, 0] + hits[:, :, 1]
        probabilities = strength / (strength + self.body_hits)
        if data.multiclass:
            selected = _argmax_rows(probabilities)
            nothing = strength.sum(axis=1) == 0
            selected[nothing] = 0
            selected[nothing, self.fallback_] = 1
        else:
            selected = ((hits[:, :, 0] > 0) | (hits[:, :, 1] >= self.body_hits)).astype(np.int8)
        analysis = None
        if data.has_kind:
            analysis = np.array([self._analysis(data.documents[i]) for i in test])
        return Scores(probabilities, selected, analysis)

    @staticmethod
    def _analysis(document: str) -> float:
        """An editor's rule of thumb: enumerations, problems and suggestions mean analysis."""
        counts = structure_counts(document)
        points = (
            min(counts["enumeration"], 4)
            + min(counts["problems"], 2)
            + min(counts["suggestions"], 2)
            + min(counts["practice"], 2)
            - 2 * counts["date_opening"]
            - min(counts["event"], 2)
        )
        return 1.0 / (1.0 + math.exp(-(points - 2.5)))


def fasttext_module() -> Any | None:
    """The ``fasttext`` module, or None when the optional extra is not installed."""
    try:
        import fasttext
    except ImportError:
        return None
    return fasttext


class FastTextMethod(Method):
    """fastText supervised classifiers over the same word segmentation (topics and kind)."""

    name = "fasttext"
    NONE = "__none__"

    def __init__(
        self,
        *,
        seed: int = 0,
        epoch: int = 25,
        lr: float = 0.5,
        word_ngrams: int = 2,
        dim: int = 50,
        bucket: int = 200_000,
    ) -> None:
        self.seed = seed
        self.bucket = bucket
        self.epoch = epoch
        self.lr = lr
        self.word_ngrams = word_ngrams
        self.dim = dim

    def available(self) -> str | None:
        if fasttext_module() is None:
            return "fasttext is not installed (pip install 'xinxi[fasttext]')"
        return None

    @staticmethod
    def _line(document: str) -> str:
        return " ".join(word_tokens(document)).replace("\n", " ")

    def _train(self, lines: list[str], loss: str) -> Any:
        fasttext = fasttext_module()
        if fasttext is None:
            raise RuntimeError(self.available())
        handle, path = tempfile.mkstemp(suffix=".txt", prefix="xinxi-fasttext-")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                stream.write("\n".join(lines) + "\n")
            return fasttext.train_supervised(
                input=path, epoch=self.epoch, lr=self.lr, wordNgrams=self.word_ngrams, dim=self.dim,
                loss=loss, minCount=1, thread=1, seed=self.seed, verbose=0, bucket=self.bucket,
            )
        finally:
            os.unlink(path)

    def fit(self, data: Dataset, train: np.ndarray) -> None:
        texts = [self._line(data.documents[i]) for i in train]
        lines = []
        for text, i in zip(texts, train, strict=True):
            labels = [data.labels[j] for j in np.flatnonzero(data.truth[i])] or [self.NONE]
            lines.append(" ".join(f"__label__{label}" for label in labels) + " " + text)
        self.topics_ = self._train(lines, "softmax" if data.multiclass else "ova")
        self.kind_ = None
        if data.has_kind:
            self.kind_ = self._train(
                [f"__label__{KIND_NAMES[data.is_analysis[i]]} {t}" for t, i in zip(texts, train, strict=True)],
                "softmax",
            )

    @staticmethod
    def _probabilities(model: Any, text: str) -> dict[str, float]:
        # The low-level call: fasttext 0.9.2's predict() breaks under numpy 2.
        found = model.f.predict(text + "\n", -1, 0.0, "strict")
        return {label.removeprefix("__label__"): float(p) for p, label in found}

    def score(self, data: Dataset, test: np.ndarray) -> Scores:
        texts = [self._line(data.documents[i]) for i in test]
        probabilities = np.zeros((len(test), len(data.labels)))
        analysis = np.zeros(len(test)) if self.kind_ is not None else None
        for row, text in enumerate(texts):
            found = self._probabilities(self.topics_, text)
            probabilities[row] = [found.get(label, 0.0) for label in data.labels]
            if analysis is not None:
                analysis[row] = self._probabilities(self.kind_, text).get(POSITIVE_KIND, 0.0)
        probabilities = np.clip(probabilities, 0.0, 1.0)  # fastText's softmax can exceed 1 by 1e-5
        if analysis is not None:
            analysis = np.clip(analysis, 0.0, 1.0)
        selected = _argmax_rows(probabilities) if data.multiclass else (probabilities >= 0.5).astype(np.int8)
        return Scores(probabilities, selected, analysis)


def build_method(name: str, *, seed: int = 0, params: dict[str, Any] | None = None, inner_folds: int = 3) -> Method:
    """The method called ``name`` (one of :data:`METHODS`)."""
    if name == "xinxi":
        return XinxiMethod(seed=seed, inner_folds=inner_folds, params=params)
    if name == SEED_ONLY:
        return XinxiMethod(seed=seed, inner_folds=inner_folds, params=params, only_source=SEED_SOURCE)
    if name == "sklearn-baseline":
        return SklearnBaseline(seed=seed)
    if name == "keyword-rules":
        return KeywordRules()
    if name == "fasttext":
        return FastTextMethod(seed=seed)
    raise ValueError(f"unknown method {name!r}; use {', '.join((*METHODS, SEED_ONLY))}")
