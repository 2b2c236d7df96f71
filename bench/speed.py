"""Speed of xinxi's Predictor against a plain jieba + TF-IDF + LogisticRegression pipeline.

Both are trained on the seed corpus in this process and measured side by
side on the same items, pinned to one core, several rounds each; the table
reports medians and the ratio to the plain pipeline, because this machine is
shared and absolute numbers drift.

    python bench/speed.py [--rounds 5] [--items 10000] [--latency-calls 1000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
from threadpoolctl import threadpool_limits


def items_of_500_chars(texts: list[str], count: int) -> list[dict]:
    """``count`` distinct 500-character items cut from the corpus texts."""
    pool = "\n".join(texts)
    items = []
    for n in range(count):
        start = (n * 137) % max(len(pool) - 500, 1)
        items.append({"id": str(n), "title": "", "text": pool[start : start + 500]})
    return items


def plain_pipeline(items_train, seed: int):
    """jieba (Python) + TfidfVectorizer + one-vs-rest LogisticRegression: what one would write first."""
    import jieba
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline

    from model.labels import TOPIC_NAMES
    from model.text import join_document

    jieba.setLogLevel(60)
    jieba.initialize()
    pipeline = make_pipeline(
        TfidfVectorizer(tokenizer=jieba.lcut, token_pattern=None, lowercase=False),
        OneVsRestClassifier(LogisticRegression(max_iter=1000, random_state=seed)),
    )
    documents = [join_document(i.title, i.text) for i in items_train]
    truth = np.array([[int(t in (i.topics or [])) for t in TOPIC_NAMES] for i in items_train])
    return pipeline, documents, truth


def measure(
    name: str,
    score_one: Callable[[dict], object],
    score_many: Callable[[list[dict]], object],
    batch: list[dict],
    one: list[dict],
    calls: int,
    results: dict[str, dict[str, list[float]]],
) -> None:
    """Single-item latencies and batch throughput of one scorer, appended to ``results[name]``."""
    latencies = []
    for call in range(calls):
        item = one[call % len(one)]
        start = time.perf_counter()
        score_one(item)
        latencies.append(time.perf_counter() - start)
    results[name].setdefault("p50_ms", []).append(1000 * float(np.percentile(latencies, 50)))
    results[name].setdefault("p99_ms", []).append(1000 * float(np.percentile(latencies, 99)))
    start = time.perf_counter()
    for offset in range(0, len(batch), 256):
        score_many(batch[offset : offset + 256])
    results[name].setdefault("items_per_s", []).append(len(batch) / (time.perf_counter() - start))


def measure_round(corpus, batch: list[dict], one: list[dict], calls: int, results: dict) -> None:
    """Train both pipelines on the corpus, then measure both on the same items."""
    from model import Predictor
    from model.text import join_document
    from training import fit_model

    started = time.perf_counter()
    bundle, manifest = fit_model(corpus, seed=0)
    results["xinxi"].setdefault("train_s", []).append(time.perf_counter() - started)
    predictor = Predictor(bundle, {**manifest, "version": "bench"})

    plain, documents, truth = plain_pipeline(corpus, 0)
    started = time.perf_counter()
    plain.fit(documents, truth)
    results["plain"].setdefault("train_s", []).append(time.perf_counter() - started)

    measure("xinxi", lambda item: predictor.predict([item]), predictor.predict, batch, one, calls, results)
    measure(
        "plain",
        lambda item: plain.predict_proba([join_document(item["title"], item["text"])]),
        lambda items: plain.predict_proba([join_document(i["title"], i["text"]) for i in items]),
        batch, one, calls, results,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--latency-calls", type=int, default=1000)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

    from training import SEED_DATA, load_items

    corpus, _ = load_items(SEED_DATA, require_labels=True)
    batch = items_of_500_chars([i.text for i in corpus], args.items)
    one = batch[:200]
    results: dict[str, dict[str, list[float]]] = {"xinxi": {}, "plain": {}}

    with threadpool_limits(1):
        for round_ in range(args.rounds):
            measure_round(corpus, batch, one, args.latency_calls, results)
            print(f"round {round_ + 1}/{args.rounds}: " + ", ".join(
                f"{n} {results[n]['items_per_s'][-1]:.0f} items/s p50 {results[n]['p50_ms'][-1]:.2f} ms"
                for n in results
            ), flush=True)

    median = {n: {k: statistics.median(v) for k, v in metrics.items()} for n, metrics in results.items()}
    print(f"\nMedians of {args.rounds} rounds, one core, {len(corpus)} training items, "
          f"{args.items} items of 500 characters:\n")
    print("| measure | xinxi | plain jieba + TF-IDF + LR | ratio (median of per-round ratios) |")
    print("|---|---|---|---|")
    for key, label, better in (
        ("p50_ms", "latency p50, one item (ms)", "lower"),
        ("p99_ms", "latency p99, one item (ms)", "lower"),
        ("items_per_s", "throughput (items/s)", "higher"),
        ("train_s", "training time (s)", "lower"),
    ):
        x, p = median["xinxi"][key], median["plain"][key]
        # The ratio is taken within each round (both measured minutes apart), then its median.
        rounds = zip(results["xinxi"][key], results["plain"][key], strict=True)
        ratio = statistics.median(b / a if better == "lower" else a / b for a, b in rounds)
        print(f"| {label} | {x:.2f} | {p:.2f} | {ratio:.1f}x {'faster' if ratio >= 1 else 'slower'} |")
    print("\nxinxi's training time includes its 5-fold cross-validation (thresholds and metrics);"
          " the plain pipeline fits once.")


if __name__ == "__main__":
    main()
