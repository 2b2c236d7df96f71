"""The labelled corpus: seed and real items, their cleaning, de-duplication and checks.

``datasets/seed/`` holds items written for the project; ``datasets/real/`` holds
real published items, each with its ``source`` (the collection) and ``origin``
(where exactly it was found). This module is the one place that knows that
layout. It cleans real text of page furniture, finds near-duplicates across
both parts (character 5-gram Jaccard), checks every real record against
ANNOTATION.md, and measures the agreement of two independent labelling passes.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.metrics import cohen_kappa_score, f1_score

from model.labels import KIND_NAMES, TOPIC_NAMES

SEED_SOURCE = "seed"
"""The ``source`` of every hand-written item: the seed corpus is one collection."""

NEAR_DUPLICATE = 0.5
"""Character 5-gram Jaccard similarity at which two items count as the same item."""

REQUIRED_REAL_FIELDS = ("id", "title", "text", "topics", "kind", "source", "origin")

_TAG = re.compile(r"<\s*/?\s*[a-zA-Z][a-zA-Z0-9]*(?:\s[^<>]*)?/?\s*>")
_ENTITY = re.compile(r"&(?:[a-zA-Z]{2,8}|#\d{2,6}|#x[0-9a-fA-F]{2,5});")
_URL = re.compile(r"(?:https?://|www\.)[\w./?=&%#:+~-]+")
_FURNITURE_LINE = re.compile(
    r"^\s*(?:"
    r"(?:来源|作者|编辑|责任编辑|责编|审核|审校|校对|终审|初审|复审|撰稿|通讯员|记者|摄影|图片|供稿|发布人|信息来源)"
    r"\s*[：:].{0,40}"
    r"|(?:浏览|阅读|访问|点击)(?:次数|量)?\s*[：:]?\s*\d*\s*次?"
    r"|【?\s*字(?:体|号)\s*[：:]?\s*[大中小\s]+】?"
    r"|(?:(?:分享到|分享|打印(?:本页|文章)?|关闭(?:窗口|本页)?|返回顶部|扫一扫.{0,20}|收藏|【打印】|【关闭】)[\s|/]*)+"
    r"|(?:上一篇|下一篇)\s*[：:].{0,80}"
    r"|附件\s*[：:]?\s*\d*\s*[.、]?\s*[^\n]{0,80}\.(?:docx?|xlsx?|pdf|wps|zip|rar|jpg|png)"
    r"|[\s|/>›»]*(?:首页|当前位置)\s*[>›»].*"
    r")\s*$"
)
_SPACES = re.compile(r"[ \t\u3000\u00a0\u200b\u200d\ufeff]+")


def clean_text(text: str) -> str:
    """Remove page furniture from a published text, keeping its words as published.

    HTML tags and entities, URLs, navigation, bylines and editor lines, view
    counters, share/print/close buttons and attachment file names go; runs of
    spaces fold to one and empty lines are dropped. Paragraphs stay separated
    by ``\\n``.
    """
    text = _TAG.sub("", html.unescape(_TAG.sub("\n", text) if "<br" in text.lower() else text))
    text = _URL.sub("", text)
    lines = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = _SPACES.sub(" ", line).strip()
        if line and not _FURNITURE_LINE.match(line):
            lines.append(line)
    return "\n".join(lines)


def furniture_left(text: str) -> str | None:
    """The first piece of HTML or page furniture still in ``text``, or None."""
    for pattern in (_TAG, _ENTITY, _URL):
        found = pattern.search(text)
        if found:
            return found.group(0)
    for line in text.split("\n"):
        if _FURNITURE_LINE.match(line):
            return line.strip()
    return None


def shingle_matrix(texts: Sequence[str], n: int = 5) -> sparse.csr_matrix:
    """Binary items x character-n-gram matrix (white space removed first)."""
    vocabulary: dict[str, int] = {}
    indptr: list[int] = [0]
    indices: list[int] = []
    for text in texts:
        compact = re.sub(r"\s+", "", text)
        grams = {compact[i : i + n] for i in range(max(len(compact) - n + 1, 1))}
        indices.extend(vocabulary.setdefault(gram, len(vocabulary)) for gram in grams)
        indptr.append(len(indices))
    data = np.ones(len(indices), dtype=np.int32)
    return sparse.csr_matrix((data, indices, indptr), shape=(len(texts), max(len(vocabulary), 1)))


def near_duplicate_pairs(
    texts: Sequence[str], threshold: float = NEAR_DUPLICATE, block: int = 1000
) -> list[tuple[int, int, float]]:
    """Index pairs ``(i, j)``, ``i < j``, whose character 5-gram Jaccard is at least ``threshold``.

    The product of the shingle matrix with itself is taken in row blocks, so
    memory stays bounded for corpora of many thousand items.
    """
    matrix = shingle_matrix(texts)
    sizes = np.asarray(matrix.sum(axis=1)).ravel()
    transposed = matrix.T.tocsc()
    pairs = []
    for start in range(0, matrix.shape[0], block):
        overlap = (matrix[start : start + block] @ transposed).tocoo()
        rows = overlap.row + start
        keep = overlap.col > rows
        rows, cols, shared = rows[keep], overlap.col[keep], overlap.data[keep]
        jaccard = shared / (sizes[rows] + sizes[cols] - shared)
        for i, j, value in zip(rows, cols, jaccard, strict=True):
            if value >= threshold:
                pairs.append((int(i), int(j), float(value)))
    return sorted(pairs)


def deduplicate(
    records: Sequence[Mapping[str, Any]], threshold: float = NEAR_DUPLICATE
) -> tuple[list[Mapping[str, Any]], list[tuple[Mapping[str, Any], Mapping[str, Any], float]]]:
    """Keep the first of every group of near-duplicate records (by title and text).

    Order decides which copy stays: put the preferred collection first (the
    seed, then county-level sources before the provinces that republish them).

    Returns
    -------
    kept, dropped
        The kept records in order, and ``(dropped, kept_copy, jaccard)`` for each other copy.
    """
    texts = [f"{r.get('title', '')}\n{r.get('text', '')}" for r in records]
    parent = list(range(len(records)))
    best: dict[int, tuple[int, float]] = {}
    for i, j, value in near_duplicate_pairs(texts, threshold):
        root = i
        while parent[root] != root:
            root = parent[root]
        if parent[j] == j and j not in best:
            parent[j] = root
            best[j] = (root, value)
    kept = [r for index, r in enumerate(records) if parent[index] == index]
    dropped = [(records[j], records[root], value) for j, (root, value) in sorted(best.items())]
    return kept, dropped


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a corpus record: where it is and why."""

    file: str
    line: int | None
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}" if self.line else f"{self.file}: {self.reason}"


def read_records(path: Path) -> tuple[list[dict[str, Any]], list[Problem]]:
    """Every JSON line of every ``*.jsonl`` in ``path`` (or of the file), each with ``_file`` and ``_line``."""
    files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
    records, problems = [], []
    for file in files:
        for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.append(Problem(str(file), number, f"not valid JSON ({exc.msg} at column {exc.colno})"))
                continue
            if not isinstance(record, dict):
                problems.append(Problem(str(file), number, "expected a JSON object"))
                continue
            record["_file"], record["_line"] = str(file), number
            records.append(record)
    return records, problems


def record_problems(records: Iterable[Mapping[str, Any]], *, real: bool) -> list[Problem]:
    """What breaks ANNOTATION.md §3-4 in ``records``: fields, labels, HTML, provenance, repeated ids."""
    problems = []
    seen: dict[str, str] = {}
    for record in records:
        file, line = str(record.get("_file", "?")), record.get("_line")

        def fail(reason: str, file: str = file, line: Any = line) -> None:
            problems.append(Problem(file, line, reason))

        required = REQUIRED_REAL_FIELDS if real else REQUIRED_REAL_FIELDS[:5]
        for name in required:
            value = record.get(name)
            if name == "topics":
                if not isinstance(value, list):
                    fail("topics is missing or not a list")
            elif not isinstance(value, str) or not value.strip():
                fail(f"{name} is missing or empty")
        item_id = record.get("id")
        if isinstance(item_id, str):
            if item_id in seen:
                fail(f"id {item_id} is already used at {seen[item_id]}")
            seen[item_id] = f"{Path(file).name}:{line}"
        topics = record.get("topics")
        if isinstance(topics, list):
            unknown = [t for t in topics if t not in TOPIC_NAMES]
            if unknown:
                fail(f"topic {unknown[0]!r} is not in the guide ({', '.join(TOPIC_NAMES)})")
            if len(set(topics)) != len(topics):
                fail("topics repeat a label")
        if record.get("kind") not in KIND_NAMES:
            fail(f"kind {record.get('kind')!r} is not one of {', '.join(KIND_NAMES)}")
        text = record.get("text")
        if real and isinstance(text, str):
            left = furniture_left(f"{record.get('title', '')}\n{text}")
            if left is not None:
                fail(f"HTML or page furniture left in the text: {left[:40]!r}")
    return problems


def label_agreement(
    first: Mapping[str, Mapping[str, Any]], second: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """Agreement of two labelling passes over the same ids.

    Per topic the F1 of one pass against the other (symmetric), their macro
    mean, exact agreement on the whole topic set, and Cohen's kappa and raw
    agreement for kind.
    """
    ids = sorted(set(first) & set(second))
    if not ids:
        raise ValueError("the two passes share no item")
    report: dict[str, Any] = {"items": len(ids), "topics": {}}
    for label in TOPIC_NAMES:
        a = [label in first[i]["topics"] for i in ids]
        b = [label in second[i]["topics"] for i in ids]
        report["topics"][label] = {
            "f1": round(float(f1_score(a, b, zero_division=1.0)), 4),
            "first": int(sum(a)),
            "second": int(sum(b)),
        }
    report["macro_f1"] = round(float(np.mean([v["f1"] for v in report["topics"].values()])), 4)
    report["topic_set_agreement"] = round(
        float(np.mean([set(first[i]["topics"]) == set(second[i]["topics"]) for i in ids])), 4
    )
    kinds_a = [first[i]["kind"] for i in ids]
    kinds_b = [second[i]["kind"] for i in ids]
    report["kind"] = {
        "agreement": round(float(np.mean([x == y for x, y in zip(kinds_a, kinds_b, strict=True)])), 4),
        "kappa": round(float(cohen_kappa_score(kinds_a, kinds_b)), 4),
    }
    return report


LEVELS = ("county", "city", "province", "national")
"""Administrative levels, lowest first: of two copies of an item the lower level's stays."""

MIN_CHARS, MAX_CHARS = 80, 3500
"""Length of a real item's body after cleaning (ANNOTATION.md: roughly 80 to 3,000)."""

REAL_FIELDS = ("id", "title", "text", "topics", "kind", "source", "origin", "date", "unit", "level", "section")


def settle_labels(
    passes: Sequence[Mapping[str, Mapping[str, Any]]], adjudicated: Mapping[str, Mapping[str, Any]]
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Final labels per id: the passes' own where they agree, the third reading where they do not.

    Returns
    -------
    labels, unsettled
        ``{id: {"topics", "kind"}}`` and the ids whose passes disagree with no adjudication.
    """
    first, *others = passes
    labels: dict[str, dict[str, Any]] = {}
    unsettled = []
    for item_id, label in first.items():
        copies = [other.get(item_id) for other in others]
        if any(copy is None for copy in copies):
            continue
        agreed = all(
            set(copy["topics"]) == set(label["topics"]) and copy["kind"] == label["kind"]
            for copy in copies
            if copy is not None
        )
        settled = label if agreed else adjudicated.get(item_id)
        if settled is None:
            unsettled.append(item_id)
            continue
        labels[item_id] = {
            "topics": [t for t in TOPIC_NAMES if t in settled["topics"]],
            "kind": settled["kind"],
        }
    return labels, unsettled


def build_real_corpus(
    raw: Sequence[Mapping[str, Any]],
    labels: Mapping[str, Mapping[str, Any]],
    seed: Sequence[Mapping[str, Any]] = (),
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Clean, filter and de-duplicate collected real items and attach their settled labels.

    Parameters
    ----------
    raw : sequence of mapping
        Collected items with id, title, text, source, origin (and date, unit, level, section).
    labels : mapping
        Settled labels by id (:func:`settle_labels`); items without labels are left out.
    seed : sequence of mapping
        The written corpus: a real item that nearly duplicates a seed item is dropped.

    Returns
    -------
    items, report
        The corpus records, and counts of what was kept and dropped, by reason and by source.
    """
    dropped: dict[str, int] = {}

    def drop(reason: str) -> None:
        dropped[reason] = dropped.get(reason, 0) + 1

    candidates = []
    for record in raw:
        if record["id"] not in labels:
            drop("not labelled")
            continue
        text, title = clean_text(record["text"]), clean_text(record.get("title", "")).replace("\n", " ")
        if not MIN_CHARS <= len(text) <= MAX_CHARS:
            drop(f"body outside {MIN_CHARS}-{MAX_CHARS} characters after cleaning")
            continue
        item = {name: record.get(name, "") for name in REAL_FIELDS}
        item.update(title=title, text=text, **labels[record["id"]])
        candidates.append(item)
    level = {name: rank for rank, name in enumerate(LEVELS)}
    candidates.sort(key=lambda r: (level.get(r["level"], len(LEVELS)), r["source"], r["id"]))
    written = [{"id": r.get("id"), "title": r.get("title", ""), "text": r.get("text", ""), "seed": True} for r in seed]
    kept, copies = deduplicate([*written, *candidates])
    for copy, original, _ in copies:
        if not copy.get("seed"):
            drop("near-duplicate of a seed item" if original.get("seed") else "near-duplicate of another real item")
    items = sorted((dict(r) for r in kept if not r.get("seed")), key=lambda r: (r["source"], r["id"]))
    by_source: dict[str, int] = {}
    for item in items:
        by_source[item["source"]] = by_source.get(item["source"], 0) + 1
    return items, {"kept": len(items), "by_source": by_source, "dropped": dropped}


PASSES = ("pass-a", "pass-b")
"""The two independent labelling passes, one file each in the labels directory."""
ADJUDICATION = "adjudication"
"""The third reading of every item on which the passes disagree."""


def read_labels(path: Path) -> dict[str, dict[str, Any]]:
    """``{id: {"topics", "kind", ...}}`` from a labels file (one JSON object a line)."""
    records, problems = read_records(path)
    if problems:
        raise ValueError("; ".join(map(str, problems)))
    return {r["id"]: r for r in records}


REREADS = "rereads"
"""Later readings of some items under a rule settled after their first reading, one directory each.

Each ``<labels>/rereads/<name>/`` holds its own ``pass-a.jsonl``, ``pass-b.jsonl`` and
``adjudication.jsonl`` over the items it re-reads. Its settled labels replace the first
reading's for those ids (directories in name order, a later one winning); the first
reading's files stay as they were, so both can be recomputed and compared.
"""


def _settled_round(folder: Path) -> tuple[dict[str, dict[str, Any]], list[str], dict[str, Any]]:
    """One labelling round of ``folder``: its settled labels, unsettled ids and the agreement of its passes."""
    passes = [read_labels(folder / f"{name}.jsonl") for name in PASSES]
    adjudicated_file = folder / f"{ADJUDICATION}.jsonl"
    adjudicated = read_labels(adjudicated_file) if adjudicated_file.exists() else {}
    labels, unsettled = settle_labels(passes, adjudicated)
    return labels, unsettled, label_agreement(*passes)


def corpus_labels(labels_dir: Path) -> tuple[dict[str, dict[str, Any]], list[str], dict[str, Any]]:
    """The settled labels of the real corpus, the unsettled ids, and the agreement of the passes.

    The agreement is the first reading's; each re-read round (:data:`REREADS`) adds its own
    under ``agreement["rereads"][name]``, with the number of its items whose settled label changed.
    """
    labels, unsettled, agreement = _settled_round(labels_dir)
    rereads = labels_dir / REREADS
    rounds = sorted(p for p in rereads.iterdir() if p.is_dir()) if rereads.is_dir() else []
    for folder in rounds:
        again, still_open, reread_agreement = _settled_round(folder)
        changed = sum(
            1 for item_id, label in again.items()
            if item_id in labels and (set(labels[item_id]["topics"]) != set(label["topics"])
                                      or labels[item_id]["kind"] != label["kind"])
        )
        reread_agreement["changed"] = changed
        labels.update(again)
        unsettled = [i for i in unsettled if i not in again] + still_open
        agreement.setdefault(REREADS, {})[folder.name] = reread_agreement
    return labels, unsettled, agreement


def write_collections(items: Sequence[Mapping[str, Any]], out: Path) -> dict[str, int]:
    """Write ``items`` as one ``<source>.jsonl`` per collection in ``out``; return the counts per file."""
    out.mkdir(parents=True, exist_ok=True)
    by_source: dict[str, list[Mapping[str, Any]]] = {}
    for item in items:
        by_source.setdefault(item["source"], []).append(item)
    for source, records in by_source.items():
        lines = [json.dumps({k: r[k] for k in REAL_FIELDS if r.get(k) not in (None, "")} | {"topics": r["topics"]},
                            ensure_ascii=False) for r in records]
        (out / f"{source}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {source: len(records) for source, records in by_source.items()}


def corpus_report(real: Sequence[Mapping[str, Any]], seed: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Composition of the real corpus (ANNOTATION.md §4 and the project's minimums) and its overlap with the seed."""
    topics = {label: sum(label in r["topics"] for r in real) for label in TOPIC_NAMES}
    levels: dict[str, int] = {}
    sources: dict[str, int] = {}
    for r in real:
        levels[r.get("level") or "unknown"] = levels.get(r.get("level") or "unknown", 0) + 1
        sources[r["source"]] = sources.get(r["source"], 0) + 1
    texts = [f"{r.get('title', '')}\n{r.get('text', '')}" for r in [*seed, *real]]
    copies = [(i, j) for i, j, _ in near_duplicate_pairs(texts) if j >= len(seed)]
    return {
        "items": len(real),
        "sources": sources,
        "levels": levels,
        "county_or_city_share": round((levels.get("county", 0) + levels.get("city", 0)) / max(len(real), 1), 4),
        "topics": topics,
        "no_topic": sum(not r["topics"] for r in real),
        "kinds": {kind: sum(r["kind"] == kind for r in real) for kind in KIND_NAMES},
        "near_duplicates": len(copies),
    }


def build_corpus(raw: Sequence[Path], labels_dir: Path, seed_dir: Path, out: Path) -> dict[str, Any]:
    """Build ``datasets/real``: clean, filter and de-duplicate the collected items, attach their settled labels.

    Parameters
    ----------
    raw : sequence of Path
        Files or directories of collected items (id, title, text, source, origin, ...).
    labels_dir : Path
        ``pass-a.jsonl``, ``pass-b.jsonl`` and ``adjudication.jsonl``, and any re-read rounds
        under ``rereads/`` (:data:`REREADS`).
    seed_dir : Path
        The written corpus, of which no real item may be a near-copy.
    out : Path
        Where the collections are written, one ``<source>.jsonl`` each.

    Returns
    -------
    dict
        What was kept and dropped and why, the composition and the agreement of the passes.

    Raises
    ------
    ValueError
        If a collected file is broken or some item's passes disagree with no adjudication.
    """
    records: list[dict[str, Any]] = []
    for path in raw:
        found, broken = read_records(path)
        if broken:
            raise ValueError("; ".join(map(str, broken)))
        records += found
    labels, unsettled, agreement = corpus_labels(labels_dir)
    if unsettled:
        raise ValueError(f"{len(unsettled)} items have disagreeing passes and no adjudication, e.g. {unsettled[:5]}")
    seed, _ = read_records(seed_dir)
    items, report = build_real_corpus(records, labels, seed)
    for stale in out.glob("*.jsonl"):
        stale.unlink()
    report["files"] = write_collections(items, out)
    report["composition"] = corpus_report(items, seed)
    report["agreement"] = agreement
    return report


def check_corpus(real_dir: Path, seed_dir: Path, labels_dir: Path) -> tuple[list[Problem], dict[str, Any]]:
    """Everything ANNOTATION.md §3-4 asks of ``datasets/real``, as problems (file, line, reason) and a report.

    Besides each record's own checks: every item's labels are the settled
    labels of its two passes (recomputed from ``labels_dir``), no item is a
    near-copy of another or of a seed item, and every collection is
    described in ``SOURCES.md``.
    """
    records, problems = read_records(real_dir)
    problems += record_problems(records, real=True)
    labels, unsettled, agreement = corpus_labels(labels_dir)
    for record in records:
        settled = labels.get(record.get("id", ""))
        where = (str(record["_file"]), record["_line"])
        if settled is None:
            reason = "its passes disagree and it has no adjudication" if record.get("id") in unsettled else \
                "it has no labels in both passes"
            problems.append(Problem(*where, f"id {record.get('id')}: {reason}"))
        elif set(settled["topics"]) != set(record.get("topics") or []) or settled["kind"] != record.get("kind"):
            problems.append(Problem(*where, f"id {record.get('id')}: labels differ from the settled passes "
                                            f"({settled['topics']}, {settled['kind']})"))
    seed, _ = read_records(seed_dir)
    report = corpus_report(records, seed)
    if report["near_duplicates"]:
        problems.append(Problem(str(real_dir), None, f"{report['near_duplicates']} near-duplicate pairs"))
    sources_md = real_dir / "SOURCES.md"
    described = sources_md.read_text(encoding="utf-8") if sources_md.exists() else ""
    for source in report["sources"]:
        if f"`{source}`" not in described:
            problems.append(Problem(str(sources_md), None, f"collection `{source}` is not described"))
    report["agreement"] = agreement
    return problems, report
