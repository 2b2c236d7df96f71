"""Labelled data prepared for fitting and comparison: documents, label matrix, kinds, groups, and the splits.

Every method is trained and tested on the same splits: K folds with a fixed
seed (stratified on topic set and kind, the folds the trainer itself uses), or
leave-one-file-out, where each file of a directory is held out in turn. The
seed corpus was written by several writers, one file each, so leaving a file
out tests on a writer the model has never read: a more honest estimate than
random folds, where an invented county or unit name seen in training can give
the answer away.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import KFold, StratifiedKFold

from model.labels import KIND_NAMES, TOPIC_NAMES, positive_kind_vector, topic_matrix
from model.text import join_document
from training.data import Item, load_items, topic_set
from training.errors import TrainingError

SPLITS: tuple[str, ...] = ("kfold", "files", "sources")
SEED_SOURCE = "seed"
"""The source of the written corpus: never held out by the ``sources`` split, always trained on."""
MIN_SOURCE_ITEMS = 20
"""A source with fewer items is not held out on its own (its scores would be noise); it stays in training."""
TEST_GROUP = "__test__"
"""Group name of the items of a separate test set (:func:`with_test_set`)."""


def resolve_labels(items: Sequence[Item], labels: Sequence[str] | str | None) -> list[str]:
    """The topic label set: ANNOTATION.md's by default, the data's with ``"auto"``, or a given list.

    Raises
    ------
    TrainingError
        If an item has no topics field, or carries a label outside the set,
        naming the labels and a row.
    """
    missing = [item for item in items if item.topics is None]
    if missing:
        raise TrainingError(f"item {missing[0].id} (row {missing[0].row}) has no topics field; every item needs one")
    if labels == "auto":
        chosen = topic_set(items)
    elif labels is None:
        chosen = list(TOPIC_NAMES)
    else:
        chosen = list(labels)
    known = set(chosen)
    unknown: dict[str, Item] = {}
    for item in items:
        for label in item.topics or []:
            if label not in known:
                unknown.setdefault(label, item)
    if unknown:
        where = "; ".join(f"{label!r} (first at row {item.row}, id {item.id})" for label, item in unknown.items())
        raise TrainingError(
            f"unknown labels: {where}. Known labels: {', '.join(chosen)}. "
            "Fix the labels, or train with --labels auto to take the label set from the data"
        )
    if not chosen:
        raise TrainingError("the data carries no topic labels at all")
    return chosen


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
    sources: list[str] | None = None

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
    chosen = resolve_labels(items, labels)
    truth = topic_matrix([item.topics for item in items], chosen)
    multiclass = bool(np.all(truth.sum(axis=1) == 1)) and len(chosen) > 2
    kinds = [item.kind for item in items]
    has_kind = all(k in KIND_NAMES for k in kinds) and len(set(kinds)) == 2
    return Dataset(
        items=items,
        labels=chosen,
        truth=truth,
        documents=documents(items),
        multiclass=multiclass,
        has_kind=has_kind,
        is_analysis=positive_kind_vector(kinds),
        groups=list(groups) if groups is not None else None,
        source=source,
        sources=[item.source or "data" for item in items],
    )




def documents(items: Sequence[Item]) -> list[str]:
    """The documents the features see, one per item (:func:`model.text.join_document`, as the Predictor)."""
    return [join_document(item.title, item.text) for item in items]


def load_dataset(
    path: str | Path | Sequence[str | Path],
    *,
    labels: Sequence[str] | str | None = None,
    label_names: Sequence[str] | None = None,
    skip_invalid: bool = False,
) -> Dataset:
    """Read a labelled file, or a directory of ``.jsonl`` files (one group per file), or several of these.

    With ``label_names`` (the names of numeric labels in ``text<TAB>label``
    files) and no explicit ``labels``, the label set is those names. Every
    item keeps its ``source`` (:func:`training.data.load_items`) for the
    ``sources`` split.
    """
    if not isinstance(path, (str, Path)):
        paths = [Path(p) for p in path]
        parts = [load_dataset(p, labels="auto", skip_invalid=skip_invalid) for p in paths]
        joined = [item for part in parts for item in part.items]
        names = [f"{p.name}/{g}" if g else p.stem for part, p in zip(parts, paths, strict=True)
                 for g in (part.groups or [""] * len(part))]
        repeated = [i for i, n in Counter(item.id for item in joined).items() if n > 1]
        if repeated:
            raise TrainingError(f"ids used in more than one file: {', '.join(repeated[:5])}")
        return prepare(joined, labels=labels, groups=names, source=" + ".join(str(p) for p in paths))
    path = Path(path)
    if labels is None and label_names is not None:
        labels = list(label_names)
    if path.is_dir():
        items: list[Item] = []
        groups: list[str] = []
        files = sorted(path.glob("*.jsonl"))
        for file in files:
            found, _ = load_items(file, require_labels=True, skip_invalid=skip_invalid, default_source=path.name)
            items += found
            groups += [file.stem] * len(found)
        if not files:
            return prepare(load_items(path, require_labels=True)[0], labels=labels, source=str(path))
        if (path / "SOURCES.md").is_file():
            load_items(path, require_labels=True)  # a collection of real items: check every record's provenance
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




def stratified_folds(
    items: Sequence[Item], truth: np.ndarray, folds: int, seed: int, multiclass: bool
) -> list[tuple[np.ndarray, np.ndarray]]:
    """K train/test index pairs, stratified on topic set and kind where every stratum is big enough.

    Parameters
    ----------
    items : sequence of Item
        The items, for their kinds.
    truth : ndarray
        Their topic matrix (:func:`model.labels.topic_matrix`).
    folds, seed : int
        Number of folds and the seed of the shuffle.
    multiclass : bool
        Single-label data: stratify on the one label.
    """
    if multiclass:
        strata = [str(np.argmax(row)) for row in truth]
    else:
        strata = [
            ("+".join(str(j) for j in np.flatnonzero(row)) or "none") + "/" + str(item.kind)
            for item, row in zip(items, truth, strict=True)
        ]
    counts = Counter(strata)
    strata = [s if counts[s] >= folds else "rare" for s in strata]
    splitter: Any
    if min(Counter(strata).values()) >= folds:
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        return [(np.asarray(a), np.asarray(b)) for a, b in splitter.split(np.zeros(len(items)), strata)]
    splitter = KFold(n_splits=folds, shuffle=True, random_state=seed)
    return [(np.asarray(a), np.asarray(b)) for a, b in splitter.split(np.zeros(len(items)))]


def make_splits(
    data: Dataset, strategy: str = "kfold", folds: int = 5, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Train/test index pairs: stratified K folds, or one held-out file (group) per split."""
    if strategy == "kfold":
        if folds < 2:
            raise TrainingError("--folds must be at least 2")
        return stratified_folds(data.items, data.truth, folds, seed, data.multiclass)
    if strategy == "files":
        if not data.groups or len(set(data.groups)) < 2:
            raise TrainingError(
                "leave-one-file-out needs a directory with at least two .jsonl files (one per writer or source)"
            )
        groups = np.asarray(data.groups)
        return [(np.flatnonzero(groups != g), np.flatnonzero(groups == g)) for g in sorted(set(data.groups))]
    if strategy == "sources":
        return source_splits(data)
    if strategy == "test":
        groups = np.asarray(data.groups or [])
        if TEST_GROUP not in set(groups.tolist()):
            raise TrainingError("a train/test split needs a test set: give --test FILE")
        return [(np.flatnonzero(groups != TEST_GROUP), np.flatnonzero(groups == TEST_GROUP))]
    raise ValueError(f"unknown split strategy {strategy!r}; use one of {', '.join(SPLITS)} or test")


def held_out_sources(data: Dataset) -> list[str]:
    """The sources the ``sources`` split holds out in turn: every one but the seed corpus and tiny ones."""
    counts = Counter(data.sources or [])
    return sorted(s for s, n in counts.items() if s != SEED_SOURCE and n >= MIN_SOURCE_ITEMS)


def source_splits(data: Dataset) -> list[tuple[np.ndarray, np.ndarray]]:
    """Leave one source out: each held-out source is tested on a model trained on every other item.

    The seed corpus (source ``seed``) is never held out: it is always part of
    the training data, as it is for the default model.
    """
    held_out = held_out_sources(data)
    if not held_out or len(set(data.sources or [])) < 2:
        raise TrainingError(
            "--by-source needs items from at least two sources, one of them with "
            f"{MIN_SOURCE_ITEMS}+ items and not the seed corpus (a `source` field per item, or one directory each)"
        )
    sources = np.asarray(data.sources)
    return [(np.flatnonzero(sources != s), np.flatnonzero(sources == s)) for s in held_out]


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
        "sources": dict(Counter(data.sources)) if data.sources else None,
    }
