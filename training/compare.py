"""Side-by-side comparison of xinxi with the baselines a user could use instead.

Every method is trained and tested on the same splits: K folds with a fixed
seed (stratified on topic set and kind, the folds the trainer itself uses), or
leave-one-file-out, where each file of a directory is held out in turn. The
seed corpus was written by several writers, one file each, so leaving a file
out tests on a writer the model has never read: a more honest estimate than
random folds, where an invented county or unit name seen in training can give
the answer away.

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

Metrics are computed on the pooled out-of-fold predictions, with
:func:`training.evaluate.topic_metrics` and :func:`training.evaluate.kind_metrics`.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from model.features import structure_counts
from model.labels import KIND_NAMES, POSITIVE_KIND, TOPICS, positive_kind_vector, topic_matrix
from model.predictor import Prediction, Predictor
from model.text import join_document, user_dictionary, word_tokens
from training.data import Item, load_items
from training.evaluate import kind_metrics, topic_metrics
from training.trainer import TrainingError, _folds, fit_model, resolve_labels

METHODS: tuple[str, ...] = ("xinxi", "sklearn-baseline", "keyword-rules", "fasttext")
SPLITS: tuple[str, ...] = ("kfold", "files")
TEST_GROUP = "__test__"
"""Group name of the items of a separate test set (:func:`with_test_set`)."""

Progress = Callable[[str, int, int], None]


def _quiet(step: str, done: int, total: int) -> None:
    return None


@dataclass
class Dataset:
    """Labelled items prepared for comparison: documents, label matrix, kinds and groups."""

    items: list[Item]
    labels: list[str]
    truth: np.ndarray
    documents: list[str]
    multiclass: bool
    has_kind: bool
    is_analysis: np.ndarray
    groups: list[str] | None = None
    source: str = ""

    def __len__(self) -> int:
        return len(self.items)


def prepare(
    items: Sequence[Item],
    *,
    labels: Sequence[str] | str | None = None,
    groups: Sequence[str] | None = None,
    source: str = "",
) -> Dataset:
    """Build a :class:`Dataset` from items, checking the labels as the trainer does.

    Parameters
    ----------
    items : sequence of Item
        Items with topics (single-label data: exactly one topic each).
    labels : sequence of str, "auto" or None
        Topic label set; None is ANNOTATION.md's, "auto" takes it from the data.
    groups : sequence of str, optional
        One group name per item (the file it came from) for leave-one-file-out.
    """
    items = list(items)
    missing = [item for item in items if item.topics is None]
    if missing:
        raise TrainingError(f"item {missing[0].id} (row {missing[0].row}) has no topics field; every item needs one")
    chosen = resolve_labels(items, labels)
    truth = topic_matrix([item.topics for item in items], chosen)
    multiclass = bool(np.all(truth.sum(axis=1) == 1)) and len(chosen) > 2
    kinds = [item.kind for item in items]
    has_kind = all(k in KIND_NAMES for k in kinds) and len(set(kinds)) == 2
    return Dataset(
        items=items,
        labels=chosen,
        truth=truth,
        documents=[join_document(item.title, item.text) for item in items],
        multiclass=multiclass,
        has_kind=has_kind,
        is_analysis=positive_kind_vector(kinds),
        groups=list(groups) if groups is not None else None,
        source=source,
    )


def load_dataset(
    path: str | Path,
    *,
    labels: Sequence[str] | str | None = None,
    label_names: Sequence[str] | None = None,
    skip_invalid: bool = False,
) -> Dataset:
    """Read a labelled file, or a directory of ``.jsonl`` files (one group per file).

    With ``label_names`` (the names of numeric labels in ``text<TAB>label``
    files) and no explicit ``labels``, the label set is those names.
    """
    path = Path(path)
    if labels is None and label_names is not None:
        labels = list(label_names)
    if path.is_dir():
        items: list[Item] = []
        groups: list[str] = []
        files = sorted(path.glob("*.jsonl"))
        for file in files:
            found, _ = load_items(file, require_labels=True, skip_invalid=skip_invalid)
            items += found
            groups += [file.stem] * len(found)
        if not files:
            return prepare(load_items(path, require_labels=True)[0], labels=labels, source=str(path))
        ids = Counter(item.id for item in items)
        repeated = [i for i, n in ids.items() if n > 1]
        if repeated:
            raise TrainingError(f"ids used in more than one file of {path}: {', '.join(repeated[:5])}")
        return prepare(items, labels=labels, groups=groups, source=str(path))
    found, _ = load_items(path, require_labels=True, skip_invalid=skip_invalid, label_names=label_names)
    return prepare(found, labels=labels, source=str(path))


def with_test_set(
    train: Dataset, path: str | Path, *, label_names: Sequence[str] | None = None
) -> Dataset:
    """``train`` followed by the items of a separate labelled test file, for one train/test split.

    Every method is then trained on all of ``train`` and scored on the test
    items only: the honest measure on text by other writers.
    """
    test, _ = load_items(path, require_labels=True, label_names=label_names)
    clash = {item.id for item in train.items} & {item.id for item in test}
    if clash:
        raise TrainingError(f"ids in both the training data and the test set: {', '.join(sorted(clash)[:5])}")
    groups = ["train"] * len(train) + [TEST_GROUP] * len(test)
    return prepare(
        train.items + test, labels=train.labels, groups=groups, source=f"{train.source} -> {Path(path).name}"
    )


def make_splits(
    data: Dataset, strategy: str = "kfold", folds: int = 5, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Train/test index pairs: stratified K folds, or one held-out file (group) per split."""
    if strategy == "kfold":
        if folds < 2:
            raise TrainingError("--folds must be at least 2")
        return [(np.asarray(a), np.asarray(b)) for a, b in _folds(data.items, data.truth, folds, seed, data.multiclass)]
    if strategy == "files":
        if not data.groups or len(set(data.groups)) < 2:
            raise TrainingError(
                "leave-one-file-out needs a directory with at least two .jsonl files (one per writer or source)"
            )
        groups = np.asarray(data.groups)
        return [(np.flatnonzero(groups != g), np.flatnonzero(groups == g)) for g in sorted(set(data.groups))]
    if strategy == "test":
        groups = np.asarray(data.groups or [])
        if TEST_GROUP not in set(groups.tolist()):
            raise TrainingError("a train/test split needs a test set: give --test FILE")
        return [(np.flatnonzero(groups != TEST_GROUP), np.flatnonzero(groups == TEST_GROUP))]
    raise ValueError(f"unknown split strategy {strategy!r}; use one of {', '.join(SPLITS)} or test")


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
    """The product pipeline: ``fit_model`` then :class:`Predictor` on held-out items."""

    name = "xinxi"

    def __init__(self, *, seed: int = 0, inner_folds: int = 3, params: dict[str, Any] | None = None) -> None:
        self.seed = seed
        self.inner_folds = inner_folds
        self.params = params

    def fit(self, data: Dataset, train: np.ndarray) -> None:
        items = [data.items[i] for i in train]
        if not data.has_kind:
            # The trainer trains the kind head only on complete kind labels; hide partial ones.
            items = [Item(id=it.id, text=it.text, title=it.title, topics=it.topics, row=it.row) for it in items]
        bundle, manifest = fit_model(
            items, seed=self.seed, folds=self.inner_folds, labels=data.labels, params=self.params, min_examples=2
        )
        self.predictor_ = Predictor(bundle, manifest)

    def score(self, data: Dataset, test: np.ndarray) -> Scores:
        predictions: list[Prediction] = []
        inputs = [data.items[i].as_input() for i in test]
        for start in range(0, len(inputs), 256):
            predictions += self.predictor_.predict(inputs[start : start + 256])
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
    if name == "sklearn-baseline":
        return SklearnBaseline(seed=seed)
    if name == "keyword-rules":
        return KeywordRules()
    if name == "fasttext":
        return FastTextMethod(seed=seed)
    raise ValueError(f"unknown method {name!r}; use {', '.join(METHODS)}")


@dataclass
class MethodRun:
    """One method's out-of-fold results on a dataset."""

    name: str
    skipped: str | None = None
    probabilities: np.ndarray | None = None
    selected: np.ndarray | None = None
    analysis: np.ndarray | None = None
    predictions: list[Prediction | None] = field(default_factory=list)
    fit_seconds: list[float] = field(default_factory=list)
    predict_seconds: float = 0.0
    fold_macro_f1: list[float] = field(default_factory=list)
    tested: np.ndarray | None = None  # items that some split held out (all, except with a test set)

    def summary(self, data: Dataset) -> dict[str, Any]:
        """The JSON entry of this method: metrics on the pooled out-of-fold predictions."""
        if self.skipped is not None:
            return {"name": self.name, "skipped": self.skipped}
        assert self.probabilities is not None and self.selected is not None and self.tested is not None
        tested = self.tested
        topics = topic_metrics(data.truth[tested], self.selected[tested], data.labels, self.probabilities[tested])
        entry: dict[str, Any] = {
            "name": self.name,
            "macro_f1": topics["macro_f1"],
            "micro_f1": topics["micro_f1"],
            "subset_accuracy": topics["subset_accuracy"],
            "no_topic_f1": None if data.multiclass else topics["no_topic_f1"],
            "fold_macro_f1_mean": round(float(np.mean(self.fold_macro_f1)), 4),
            "fold_macro_f1_std": round(float(np.std(self.fold_macro_f1)), 4),
            "per_label": topics["per_label"],
            "kind": None,
            "kind_accuracy": None,
            "kind_roc_auc": None,
            "fit_seconds": round(float(np.mean(self.fit_seconds)), 3),
            "items_per_second": round(int(tested.sum()) / self.predict_seconds, 1) if self.predict_seconds else None,
        }
        if self.analysis is not None:
            kind = kind_metrics(data.is_analysis[tested], self.analysis[tested])
            entry.update(kind=kind, kind_accuracy=kind["accuracy"], kind_roc_auc=kind["roc_auc"])
        return entry


def run_methods(
    data: Dataset,
    splits: Sequence[tuple[np.ndarray, np.ndarray]],
    methods: Sequence[Method],
    progress: Progress = _quiet,
) -> list[MethodRun]:
    """Train and score every method on every split; collect out-of-fold results."""
    runs = []
    total = len(methods) * len(splits)
    step = 0
    for method in methods:
        run = MethodRun(name=method.name, skipped=method.available())
        runs.append(run)
        if run.skipped is not None:
            step += len(splits)
            continue
        run.probabilities = np.zeros(data.truth.shape)
        run.selected = np.zeros(data.truth.shape, dtype=np.int8)
        run.analysis = np.zeros(len(data)) if data.has_kind else None
        run.predictions = [None] * len(data)
        run.tested = np.zeros(len(data), dtype=bool)
        for number, (train, test) in enumerate(splits, 1):
            run.tested[test] = True
            progress(f"{method.name} split {number}/{len(splits)}", step, total)
            started = time.perf_counter()
            method.fit(data, train)
            run.fit_seconds.append(time.perf_counter() - started)
            started = time.perf_counter()
            scores = method.score(data, test)
            run.predict_seconds += time.perf_counter() - started
            run.probabilities[test] = scores.probabilities
            run.selected[test] = scores.selected
            if run.analysis is not None:
                if scores.analysis is None:
                    run.analysis = None
                else:
                    run.analysis[test] = scores.analysis
            if scores.predictions is not None:
                for i, prediction in zip(test, scores.predictions, strict=True):
                    run.predictions[i] = prediction
            fold = topic_metrics(data.truth[test], scores.selected, data.labels)
            run.fold_macro_f1.append(fold["macro_f1"])
            step += 1
    progress("done", total, total)
    return runs


def compare(
    data: Dataset,
    *,
    strategy: str = "kfold",
    folds: int = 5,
    seed: int = 0,
    methods: Sequence[str] = METHODS,
    params: dict[str, Any] | None = None,
    inner_folds: int = 3,
    progress: Progress = _quiet,
) -> tuple[dict[str, Any], list[MethodRun]]:
    """Compare ``methods`` on ``data`` with one split strategy.

    Returns
    -------
    report, runs
        ``report`` is JSON-ready: ``{"data": ..., "split": ..., "methods": [{"name", "macro_f1", ...}]}``;
        ``runs`` keep the out-of-fold scores (and xinxi's predictions) for diagnostics.
    """
    splits = make_splits(data, strategy, folds, seed)
    built = [build_method(name, seed=seed, params=params, inner_folds=inner_folds) for name in methods]
    runs = run_methods(data, splits, built, progress)
    report = {
        "data": describe_data(data),
        "split": {
            "strategy": strategy,
            "folds": len(splits),
            "seed": seed,
            "held_out": sorted(set(data.groups)) if strategy in ("files", "test") and data.groups else None,
        },
        "methods": [run.summary(data) for run in runs],
    }
    return report, runs


def describe_data(data: Dataset) -> dict[str, Any]:
    """Size and label distribution of a dataset, for reports."""
    return {
        "source": data.source,
        "items": len(data),
        "labels": data.labels,
        "mode": "multiclass" if data.multiclass else "multilabel",
        "label_counts": dict(zip(data.labels, data.truth.sum(axis=0).astype(int).tolist(), strict=True)),
        "no_topic": int((data.truth.sum(axis=1) == 0).sum()),
        "kinds": dict(Counter(KIND_NAMES[k] for k in data.is_analysis)) if data.has_kind else None,
        "groups": dict(Counter(data.groups)) if data.groups else None,
    }


def _number(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def table_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the comparison table (one row per method), for the terminal and Markdown."""
    labels = report["data"]["labels"]
    kinds = report["data"]["kinds"] is not None
    header = ["method", *(f"F1 {label}" for label in labels), "macro F1", "micro F1"]
    if kinds:
        header += ["kind acc.", "kind AUC"]
    header += ["fit s/split", "items/s"]
    rows = []
    for entry in report["methods"]:
        if "skipped" in entry:
            rows.append([entry["name"], f"skipped: {entry['skipped']}"] + [""] * (len(header) - 2))
            continue
        row = [entry["name"], *(_number(entry["per_label"][label]["f1"]) for label in labels)]
        row += [_number(entry["macro_f1"]), _number(entry["micro_f1"])]
        if kinds:
            row += [_number(entry["kind_accuracy"]), _number(entry["kind_roc_auc"])]
        row += [_number(entry["fit_seconds"], 2), _number(entry["items_per_second"], 0)]
        rows.append(row)
    return header, rows


def split_title(report: dict[str, Any]) -> str:
    split = report["split"]
    data = report["data"]
    if split["strategy"] == "files":
        how = f"leave-one-file-out ({split['folds']} files)"
    elif split["strategy"] == "test":
        groups = data.get("groups") or {}
        trained, tested = groups.get("train", "?"), groups.get(TEST_GROUP, "?")
        how = f"trained on {trained} items, tested on the {tested} of a separate set"
    else:
        how = f"{split['folds']}-fold cross-validation, seed {split['seed']}"
    return f"{data['items']} items of {data['source'] or 'the data'}, {data['mode']}, {how}"


def markdown_table(report: dict[str, Any]) -> str:
    """The comparison as a Markdown table with a one-line caption."""
    header, rows = table_rows(report)
    lines = [f"**{split_title(report)}**", "", "| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|")
    for row in rows:
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def evaluation(
    data: Dataset,
    *,
    strategies: Sequence[str] = ("kfold",),
    folds: int = 5,
    seed: int = 0,
    methods: Sequence[str] = METHODS,
    params: dict[str, Any] | None = None,
    inner_folds: int = 3,
    errors: bool = False,
    per_label: int = 5,
    progress: Progress = _quiet,
) -> dict[str, Any]:
    """Cross-validated comparison under one or more split strategies, with xinxi's diagnostics.

    Returns the first strategy's report (``data``, ``split``, ``methods``),
    with ``calibration`` (and ``errors`` when asked) of xinxi's out-of-fold
    predictions; with several strategies, ``splits`` holds every report.
    """
    from training.diagnostics import calibration_report, error_analysis

    reports = []
    for strategy in strategies:

        def labelled(step: str, done: int, total: int, name: str = strategy) -> None:
            progress(f"{name}: {step}", done, total)

        report, runs = compare(
            data, strategy=strategy, folds=folds, seed=seed, methods=methods, params=params,
            inner_folds=inner_folds, progress=labelled,
        )
        xinxi = next((run for run in runs if run.name == "xinxi" and run.skipped is None), None)
        if xinxi is not None and xinxi.probabilities is not None and xinxi.tested is not None:
            tested = xinxi.tested
            report["calibration"] = calibration_report(
                data.truth[tested], xinxi.probabilities[tested], data.labels,
                is_analysis=data.is_analysis[tested] if xinxi.analysis is not None else None,
                analysis=None if xinxi.analysis is None else xinxi.analysis[tested],
            )
            if errors:
                pairs = [(item, p) for item, p in zip(data.items, xinxi.predictions, strict=True) if p is not None]
                report["errors"] = error_analysis(
                    [item for item, _ in pairs], [p for _, p in pairs], data.labels, per_label
                )
        reports.append(report)
    result = dict(reports[0])
    if len(reports) > 1:
        result["splits"] = reports
    return result


def evaluation_markdown(result: dict[str, Any]) -> str:
    """A Markdown document of :func:`evaluation`'s result: the tables, calibration and errors."""
    from training.diagnostics import calibration_markdown, errors_markdown

    reports = result.get("splits") or [result]
    lines = ["# xinxi evaluation", ""]
    for report in reports:
        lines += [markdown_table(report), ""]
        skipped = [m for m in report["methods"] if "skipped" in m]
        lines += [f"- {m['name']} skipped: {m['skipped']}" for m in skipped]
    for report in reports:
        title = split_title(report)
        if "calibration" in report:
            text = calibration_markdown(report["calibration"])
            lines += [text.replace("## Calibration", f"## Calibration of xinxi ({title})", 1), ""]
        if "errors" in report:
            text = errors_markdown(report["errors"])
            lines += [text.replace("## Error analysis", f"## Error analysis of xinxi ({title}):", 1), ""]
    return "\n".join(lines)
