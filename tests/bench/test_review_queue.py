"""The review-queue bench runs end to end on a tiny configuration and never trains on its test part."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

from training.data import Item

BENCH = Path(__file__).resolve().parents[2] / "bench" / "review_queue.py"


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("review_queue_bench", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write(path: Path, items: list[Item], source: str | None = None) -> Path:
    with path.open("w", encoding="utf-8") as stream:
        for item in items:
            record = {"id": item.id, "title": item.title, "text": item.text, "topics": item.topics, "kind": item.kind}
            if source:
                record["source"] = source
            stream.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


def test_tiny_learning_curves(corpus: list[Item], tmp_path: Path) -> None:
    # Three training sources besides the held-out one: the default thresholds are chosen source by source.
    files = [_write(tmp_path / "seed.jsonl", corpus[:100]), _write(tmp_path / "beta.jsonl", corpus[100:150], "beta"),
             _write(tmp_path / "gamma.jsonl", corpus[150:200], "gamma"),
             _write(tmp_path / "alpha.jsonl", corpus[200:300], "alpha")]
    out = tmp_path / "result"
    code = _bench().main(["--data", *map(str, files), "--source", "alpha", "--seeds", "3",
                          "--steps", "10,20", "--test-fraction", "0.4", "--out", str(out)])
    assert code == 0
    report = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    [result] = report["sources"]
    assert result["pool"] == {"3": 60} and result["test"] == {"3": 40} and result["base_items"] == 200
    pool, test = set(result["pool_ids"]["3"]), set(result["test_ids"]["3"])
    assert not pool & test and len(pool | test) == 100
    runs = result["runs"]
    assert [(r["strategy"], r["added"]) for r in runs] == [("queue", 10), ("queue", 20), ("random", 10), ("random", 20)]
    for run in runs:
        assert len(set(run["chosen_ids"])) == run["added"], "each step adds exactly that many distinct items"
        assert set(run["chosen_ids"]) <= pool, "items are chosen from the pool only, never the test part"
        assert 0.0 <= run["macro_f1_all"] <= 1.0 and 0.0 <= run["kind_accuracy"] <= 1.0
    queue = [r["chosen_ids"] for r in runs if r["strategy"] == "queue"]
    assert set(queue[0]) < set(queue[1]), "the queue's rounds add to what was chosen before"
    markdown = out.with_suffix(".md").read_text(encoding="utf-8")
    rows = [line for line in markdown.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + 1 + 2, "header, base model and one row per step"
    assert all(line.count("|") == 6 for line in rows)
