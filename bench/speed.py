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

    jieba.setLogLevel(60)
    jieba.initialize()
    pipeline = make_pipeline(
        TfidfVectorizer(tokenizer=jieba.lcut, token_pattern=None, lowercase=False),
        OneVsRestClassifier(LogisticRegression(max_iter=1000, random_state=seed)),
    )
    documents = [f"{i.title}\n{i.text}" for i in items_train]
    truth = np.array([[int(t in (i.topics or [])) for t in TOPIC_NAMES] for i in items_train])
    return pipeline, documents, truth


def timed(function: Callable[[], object]) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--latency-calls", type=int, default=1000)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

    from model import Predictor
    from training import DEFAULT_DATA, fit_model, load_items

    corpus, _ = load_items(DEFAULT_DATA, require_labels=True)
    batch = items_of_500_chars([i.text for i in corpus], args.items)
    one = batch[:200]
    results: dict[str, dict[str, list[float]]] = {"xinxi": {}, "plain": {}}

    with threadpool_limits(1):
        for round_ in range(args.rounds):
            bundle_manifest: dict = {}
            seconds = timed(lambda: bundle_manifest.update(zip(("b", "m"), fit_model(corpus, seed=0), strict=True)))
            results["xinxi"].setdefault("train_s", []).append(seconds)
            predictor = Predictor(bundle_manifest["b"], {**bundle_manifest["m"], "version": "bench"})

            plain, documents, truth = plain_pipeline(corpus, 0)
            results["plain"].setdefault("train_s", []).append(timed(lambda: plain.fit(documents, truth)))

            for name, score_one, score_many in (
                ("xinxi", lambda item: predictor.predict([item]), lambda items: predictor.predict(items)),
                ("plain", lambda item: plain.predict_proba([item["text"]]),
                 lambda items: plain.predict_proba([i["text"] for i in items])),
            ):
                latencies = []
                for call in range(args.latency_calls):
                    item = one[call % len(one)]
                    start = time.perf_counter()
                    score_one(item)
                    latencies.append(time.perf_counter() - start)
                results[name].setdefault("p50_ms", []).append(1000 * float(np.percentile(latencies, 50)))
                results[name].setdefault("p99_ms", []).append(1000 * float(np.percentile(latencies, 99)))
                seconds = timed(lambda: [score_many(batch[s : s + 256]) for s in range(0, len(batch), 256)])
                results[name].setdefault("items_per_s", []).append(len(batch) / seconds)
            print(f"round {round_ + 1}/{args.rounds}: " + ", ".join(
                f"{n} {results[n]['items_per_s'][-1]:.0f} items/s p50 {results[n]['p50_ms'][-1]:.2f} ms"
                for n in results
            ), flush=True)

    median = {n: {k: statistics.median(v) for k, v in metrics.items()} for n, metrics in results.items()}
    print(f"\nMedians of {args.rounds} rounds, one core, {len(corpus)} training items, "
          f"{args.items} items of 500 characters:\n")
    print("| measure | xinxi | plain jieba + TF-IDF + LR | ratio |")
    print("|---|---|---|---|")
    for key, label, better in (
        ("p50_ms", "latency p50, one item (ms)", "lower"),
        ("p99_ms", "latency p99, one item (ms)", "lower"),
        ("items_per_s", "throughput (items/s)", "higher"),
        ("train_s", "training time (s)", "lower"),
    ):
        x, p = median["xinxi"][key], median["plain"][key]
        ratio = p / x if better == "lower" else x / p
        print(f"| {label} | {x:.2f} | {p:.2f} | {ratio:.1f}x {'faster' if ratio >= 1 else 'slower'} |")
    print("\nxinxi's training time includes its 5-fold cross-validation (thresholds and metrics);"
          " the plain pipeline fits once.")


if __name__ == "__main__":
    main()
