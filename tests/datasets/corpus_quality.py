"""Checks that keep the hand-written corpus honest.

Used by ``tests/datasets/test_seed_corpus.py`` and runnable on its own while
writing items::

    python tests/datasets/corpus_quality.py datasets/seed/part-3.jsonl
    python tests/datasets/corpus_quality.py datasets/seed

The second form checks the whole corpus, the first only one file.
"""

from __future__ import annotations

import collections
import json
import re
import sys
from collections.abc import Iterable
from pathlib import Path

from model.labels import ANALYSIS, KIND_NAMES, TOPIC_NAMES
from training.corpus import near_duplicate_pairs, read_records

TOPICS = TOPIC_NAMES
KINDS = KIND_NAMES
ID_PATTERN = re.compile(r"^(seed-\d{4,5}|hold-\d{3,4})$")
DATE_PATTERN = re.compile(r"^(19|20)\d\d-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$")
SENTENCE_SPLIT = re.compile(r"[。！？；!?;\n]+")


def read_items(path: Path) -> list[dict]:
    """Read every ``*.jsonl`` in ``path`` (or the file itself), each record with ``_where`` (file:line)."""
    records, broken = read_records(path)
    if broken:
        raise ValueError("; ".join(map(str, broken)))
    for record in records:
        record["_where"] = f"{Path(record['_file']).name}:{record['_line']}"
    return records


def schema_problems(items: list[dict]) -> list[str]:
    problems = []
    seen: dict[str, str] = {}
    for item in items:
        where = item.get("_where", "?")
        item_id = item.get("id")
        if not isinstance(item_id, str) or not ID_PATTERN.match(item_id):
            problems.append(f"{where}: id {item_id!r} is not like seed-0001")
        elif item_id in seen:
            problems.append(f"{where}: id {item_id} already used at {seen[item_id]}")
        else:
            seen[item_id] = where
        for field in ("title", "text"):
            value = item.get(field)
            if not isinstance(value, str) or not value.strip():
                problems.append(f"{where}: {field} is missing or empty")
        text = item.get("text") or ""
        if isinstance(text, str) and not 60 <= len(text) <= 3500:
            problems.append(f"{where}: text has {len(text)} characters (60 to 3500 expected)")
        if isinstance(text, str) and re.search(r"<[a-zA-Z/][^>]*>", text):
            problems.append(f"{where}: text contains HTML")
        topics = item.get("topics")
        if not isinstance(topics, list) or any(t not in TOPICS for t in topics):
            problems.append(f"{where}: topics {topics!r} not a list of {TOPICS}")
        elif len(set(topics)) != len(topics):
            problems.append(f"{where}: topics repeat a label")
        if item.get("kind") not in KINDS:
            problems.append(f"{where}: kind {item.get('kind')!r} not one of {KINDS}")
        if "date" in item and not (isinstance(item["date"], str) and DATE_PATTERN.match(item["date"])):
            problems.append(f"{where}: date {item['date']!r} is not YYYY-MM-DD")
        if "adopted" in item and not isinstance(item["adopted"], bool):
            problems.append(f"{where}: adopted must be true or false")
        if "unit" in item and not (isinstance(item["unit"], str) and item["unit"].strip()):
            problems.append(f"{where}: unit must be a non-empty string")
    return problems


def near_duplicates(items: list[dict], threshold: float = 0.5) -> list[tuple[str, str, float]]:
    """Pairs whose character 5-gram Jaccard similarity is at least ``threshold`` (training.corpus's measure)."""
    texts = [item.get("title", "") + item.get("text", "") for item in items]
    return [(items[i]["_where"], items[j]["_where"], value) for i, j, value in near_duplicate_pairs(texts, threshold)]


def shared_openings(items: list[dict], length: int = 8, share: float = 0.02) -> list[tuple[str, int]]:
    """Text openings of ``length`` characters used by more than ``share`` of the items."""
    limit = max(int(share * len(items)), 1)
    counts = collections.Counter(re.sub(r"\s+", "", i.get("text", ""))[:length] for i in items)
    return [(opening, n) for opening, n in counts.most_common() if n > limit]


def repeated_sentences(items: list[dict], min_chars: int = 15, max_items: int = 3) -> list[tuple[str, int]]:
    """Sentences of ``min_chars``+ characters that appear in more than ``max_items`` items."""
    counts: collections.Counter[str] = collections.Counter()
    for item in items:
        sentences = {s.strip() for s in SENTENCE_SPLIT.split(item.get("text", ""))}
        counts.update(s for s in sentences if len(s) >= min_chars)
    return [(s, n) for s, n in counts.most_common() if n > max_items]


def distribution(items: Iterable[dict]) -> dict[str, object]:
    items = list(items)
    topic_counts = collections.Counter(t for i in items for t in i.get("topics", []))
    kind_by_topic = collections.Counter(
        (t, i.get("kind")) for i in items for t in i.get("topics", [])
    )
    lengths = [len(i.get("text", "")) for i in items]
    return {
        "items": len(items),
        "topics": dict(topic_counts),
        "no_topic": sum(1 for i in items if not i.get("topics")),
        "multi_topic": sum(1 for i in items if len(i.get("topics", [])) >= 2),
        "analysis_share": round(sum(i.get("kind") == ANALYSIS for i in items) / max(len(items), 1), 3),
        "kind_by_topic": {f"{t}/{k}": n for (t, k), n in sorted(kind_by_topic.items())},
        "under_200": sum(n < 200 for n in lengths),
        "over_800": sum(n > 800 for n in lengths),
        "units": len({i.get("unit") for i in items if i.get("unit")}),
        "adopted": sum(1 for i in items if i.get("adopted") is True),
        "years": dict(collections.Counter((i.get("date") or "????")[:4] for i in items)),
    }


def main(argv: list[str]) -> int:
    path = Path(argv[1] if len(argv) > 1 else "datasets/seed")
    items = read_items(path)
    failed = False
    for title, found in (
        ("schema", schema_problems(items)),
        ("near duplicates (5-gram Jaccard >= 0.5)", near_duplicates(items)),
        ("openings shared by more than 2%", shared_openings(items)),
        ("sentences repeated in more than 3 items", repeated_sentences(items)),
    ):
        print(f"== {title}: {len(found)}")
        for entry in found[:40]:
            print("  ", entry)
        failed = failed or bool(found)
    print(json.dumps(distribution(items), ensure_ascii=False, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
