"""Does the review queue pay? Learning curves on a collection the model was not trained on: queue against random.

One real collection S is held out (as ``xinxi evaluate --by-source`` does):
the base model is the product pipeline (``training.fit_model`` with the
default hyperparameters, training seed fixed) on the seed corpus and every
other collection. S is split, per seed, into a pool and a fixed test part.
Labelled pool items (their corpus labels stand in for the editor's) are added
to the training data in steps, chosen either

- ``queue``: in rounds, each ranked by ``model.uncertainty.prediction_priority``
  on the predictions of the model of the previous round (what ``GET /v1/review``
  puts first), retraining after each round; or
- ``random``: a random subset, nested from one step to the next;

and after each step the model is retrained and scored on the test part. The
table gives, per step, the median (and min-max) over seeds of topic macro F1
and kind accuracy.

    python bench/review_queue.py [--source tipdm-2020-replies] [--seeds 0,1,2] [--steps 50,100,200,400]
                                 [--test-fraction 0.4] [--jobs 1] [--quick] [--out bench/results/review-queue]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from joblib import Parallel, delayed
from sklearn.model_selection import train_test_split

from model.uncertainty import head_margins, prediction_priority
from training import DEFAULT_DATA, load_dataset
from training.baselines import Scores, XinxiMethod
from training.compare import MIN_LABEL_POSITIVES
from training.dataset import Dataset
from training.evaluate import kind_metrics, topic_metrics

STRATEGIES = ("queue", "random")
"""``queue`` ranks with the shipped :func:`model.uncertainty.prediction_priority`; ``random`` draws."""
EXPERIMENTS = ("queue-sum", "queue-mix")
"""Candidate orders tried against the shipped one (``--strategies queue,random,queue-sum``):

``queue-sum``
    every head's uncertainty added up (an editor's review labels every head at
    once), rather than the nearest head's alone;
``queue-mix``
    half of each round from the queue, half at random from the rest of the pool.
"""


def split_source(data: Dataset, source: str, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of ``source``'s items: a pool and a test part, stratified on topic set and kind where possible."""
    indices = np.flatnonzero(np.asarray(data.sources) == source)
    if not len(indices):
        known = ", ".join(sorted(set(data.sources or [])))
        raise SystemExit(f"no items with the source {source!r}; the data has {known}")
    strata = [
        ("+".join(str(j) for j in np.flatnonzero(data.truth[i])) or "none") + "/" + str(data.items[i].kind)
        for i in indices
    ]
    counts = Counter(strata)
    strata = [s if counts[s] >= 2 else "rare" for s in strata]
    stratify = strata if min(Counter(strata).values()) >= 2 else None
    pool, test = train_test_split(indices, test_size=test_fraction, random_state=seed, stratify=stratify)
    return np.sort(pool), np.sort(test)


def fit_and_score(
    data: Dataset, train: np.ndarray, score: np.ndarray, train_seed: int
) -> tuple[np.ndarray, Scores]:
    """Train the product pipeline on ``train`` (the by-source code path) and score ``score``: thresholds, scores."""
    method = XinxiMethod(seed=train_seed)
    method.fit(data, train)
    return method.predictor_.thresholds, method.score(data, score)


def metrics_on_test(data: Dataset, test: np.ndarray, scores: Scores) -> dict[str, Any]:
    """Macro F1 (all topics, and those with enough positives in the test part) and kind accuracy."""
    topics = topic_metrics(data.truth[test], scores.selected, data.labels)
    present = [label for label, v in topics["per_label"].items() if v["support"] >= MIN_LABEL_POSITIVES]
    result: dict[str, Any] = {
        "macro_f1": float(np.mean([topics["per_label"][label]["f1"] for label in present])) if present else None,
        "macro_f1_all": topics["macro_f1"],
        "labels_averaged": present,
        "per_label_f1": {label: v["f1"] for label, v in topics["per_label"].items()},
        "kind_accuracy": None,
    }
    if scores.analysis is not None and data.has_kind:
        result["kind_accuracy"] = kind_metrics(data.is_analysis[test], scores.analysis)["accuracy"]
    return result


def queue_order(scores: Scores, thresholds: np.ndarray, strategy: str = "queue", seed: int = 0) -> np.ndarray:
    """Positions of the scored items, most worth reviewing first (ties keep their order)."""
    assert scores.predictions is not None
    if strategy == "queue-sum":
        analysis = np.array([p.kind.analysis_probability if p.kind else 0.5 for p in scores.predictions])
        margins = head_margins(scores.probabilities, thresholds, analysis)
        return np.argsort(-(1.0 / (1.0 + margins)).sum(axis=1), kind="stable")
    ranked = np.argsort(-prediction_priority(scores.predictions, thresholds), kind="stable")
    if strategy == "queue-mix":
        drawn = np.random.default_rng(seed).permutation(len(ranked))
        taken: dict[int, None] = {}
        for pair in zip(ranked, drawn, strict=True):
            for position in pair:
                taken.setdefault(int(position))
        return np.fromiter(taken, dtype=int)
    return ranked


def run_curve(
    data: Dataset,
    base: np.ndarray,
    pool: np.ndarray,
    test: np.ndarray,
    strategy: str,
    steps: Sequence[int],
    seed: int,
    train_seed: int,
    base_thresholds: np.ndarray,
    base_pool_scores: Scores,
) -> list[dict[str, Any]]:
    """One learning curve: for each step, the chosen pool items and the retrained model's test metrics."""
    order = np.random.default_rng(seed).permutation(pool)  # the pool in this seed's order
    chosen: list[int] = []
    thresholds, pool_scores = base_thresholds, base_pool_scores
    remaining = [int(i) for i in order]  # the items pool_scores scored, in that order
    curve = []
    for step in steps:
        started = time.perf_counter()
        if strategy == "random":
            chosen = [int(i) for i in order[:step]]
        else:
            ranked = queue_order(pool_scores, thresholds, strategy, seed * 1000 + step)
            chosen += [int(remaining[k]) for k in ranked[: step - len(chosen)]]
        picked = set(chosen)
        remaining = [int(i) for i in order if i not in picked]
        train = np.concatenate([base, np.asarray(chosen, dtype=int)])
        # The queue needs the new model's view of the rest of the pool; score it with the test part.
        score = np.concatenate([test, np.asarray(remaining, dtype=int)]) if strategy != "random" else test
        thresholds, scores = fit_and_score(data, train, score, train_seed)
        test_scores = Scores(scores.probabilities[: len(test)], scores.selected[: len(test)],
                             None if scores.analysis is None else scores.analysis[: len(test)])
        if strategy != "random":
            assert scores.predictions is not None
            pool_scores = Scores(scores.probabilities[len(test):], scores.selected[len(test):],
                                 None if scores.analysis is None else scores.analysis[len(test):],
                                 scores.predictions[len(test):])
        curve.append({
            "strategy": strategy, "seed": seed, "added": step, "chosen_ids": [data.items[i].id for i in chosen],
            **metrics_on_test(data, test, test_scores), "seconds": round(time.perf_counter() - started, 1),
        })
    return curve


def _spread(values: list[float | None]) -> str:
    present = [v for v in values if v is not None]
    if not present:
        return "–"
    return f"{np.median(present):.3f} ({min(present):.3f}–{max(present):.3f})"


def table(results: dict[str, Any]) -> str:
    """Markdown: per step, medians (min–max) over seeds of every strategy's macro F1 and kind accuracy."""
    strategies = results["strategies"]
    base = results["base"]
    if not strategies:
        return ("| items added | macro F1 | kind acc. |\n|---:|---|---|\n"
                f"| 0 (base model) | {_spread(base['macro_f1'])} | {_spread(base['kind_accuracy'])} |")
    columns = [(metric, strategy) for metric in ("macro_f1", "kind_accuracy") for strategy in strategies]
    names = {"macro_f1": "macro F1", "kind_accuracy": "kind acc."}
    rows = ["| items added | " + " | ".join(f"{names[m]}, {s}" for m, s in columns) + " |",
            "|---:|" + "---|" * len(columns)]
    rows.append("| 0 (base model) | " + " | ".join(
        _spread(base[metric]) if strategy == strategies[0] else "same" for metric, strategy in columns) + " |")
    entries = results["runs"]
    for step in results["steps"]:
        cells = [_spread([e[metric] for e in entries if e["added"] == step and e["strategy"] == strategy])
                 for metric, strategy in columns]
        rows.append(f"| {step} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def bench_source(
    data: Dataset, source: str, seeds: Sequence[int], steps: Sequence[int], strategies: Sequence[str],
    test_fraction: float, train_seed: int, jobs: int, log: Any, partial: Path | None = None,
) -> dict[str, Any]:
    """Base model without ``source``, then every (seed, strategy) curve; JSON-ready."""
    held = np.flatnonzero(np.asarray(data.sources) == source)
    base = np.flatnonzero(np.asarray(data.sources) != source)
    splits = {seed: split_source(data, source, test_fraction, seed) for seed in seeds}
    smallest_pool = min(len(pool) for pool, _ in splits.values())
    if max(steps) > smallest_pool:
        raise SystemExit(f"{source}: the pool has {smallest_pool} items, fewer than the last step {max(steps)}; "
                         "lower --steps or --test-fraction")
    log(f"{source}: {len(held)} items, pool {smallest_pool}, base model on {len(base)} items")
    # The base model does not depend on the split: train it once and score every item of the source.
    base_thresholds, held_scores = fit_and_score(data, base, held, train_seed)
    assert held_scores.predictions is not None
    position = {int(i): k for k, i in enumerate(held)}

    def part(indices: np.ndarray) -> Scores:
        rows = [position[int(i)] for i in indices]
        assert held_scores.predictions is not None
        return Scores(held_scores.probabilities[rows], held_scores.selected[rows],
                      None if held_scores.analysis is None else held_scores.analysis[rows],
                      [held_scores.predictions[r] for r in rows])

    base_metrics = {seed: metrics_on_test(data, test, part(test)) for seed, (_, test) in splits.items()}
    log(f"{source}: base model: " + ", ".join(
        f"seed {seed} {m['macro_f1'] or 0:.3f}/{m['kind_accuracy'] or 0:.3f}" for seed, m in base_metrics.items()))
    tasks = [(seed, strategy) for seed in seeds for strategy in strategies]
    curves = Parallel(n_jobs=jobs, return_as="generator")(
        delayed(run_curve)(
            data, base, splits[seed][0], splits[seed][1], strategy, steps, seed, train_seed, base_thresholds,
            part(np.random.default_rng(seed).permutation(splits[seed][0])),
        )
        for seed, strategy in tasks
    )
    runs: list[dict[str, Any]] = []
    for (seed, strategy), curve in zip(tasks, curves, strict=True):
        runs += curve
        if partial is not None:  # a long run keeps what it has measured if it is stopped
            partial.write_text(json.dumps({"source": source, "base": base_metrics, "runs": runs}, ensure_ascii=False),
                               encoding="utf-8")
        log(f"{source}: seed {seed} {strategy}: " + ", ".join(
            f"{e['added']}: {e['macro_f1'] or 0:.3f}/{e['kind_accuracy'] or 0:.3f}" for e in curve))
    return {
        "source": source,
        "items": int(len(held)),
        "pool": {str(seed): int(len(pool)) for seed, (pool, _) in splits.items()},
        "test": {str(seed): int(len(test)) for seed, (_, test) in splits.items()},
        "test_ids": {str(seed): [data.items[i].id for i in test] for seed, (_, test) in splits.items()},
        "pool_ids": {str(seed): [data.items[i].id for i in pool] for seed, (pool, _) in splits.items()},
        "base_items": int(len(base)),
        "seeds": list(seeds),
        "steps": list(steps),
        "strategies": list(strategies),
        "base": {
            "macro_f1": [base_metrics[s]["macro_f1"] for s in seeds],
            "kind_accuracy": [base_metrics[s]["kind_accuracy"] for s in seeds],
            "per_seed": {str(s): base_metrics[s] for s in seeds},
        },
        "runs": runs,
    }


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, nargs="+", default=list(DEFAULT_DATA))
    parser.add_argument("--source", action="append", help="held-out collection (repeatable); "
                        "default tipdm-2020-replies")
    parser.add_argument("--seeds", type=_ints, default=[0, 1, 2], help="comma-separated split/sample seeds")
    parser.add_argument("--steps", type=_ints, default=[50, 100, 200, 400], help="labelled items added, cumulative")
    parser.add_argument("--strategies", default=",".join(STRATEGIES),
                        help="comma-separated; empty (--strategies '') scores the base model only")
    parser.add_argument("--test-fraction", type=float, default=0.4, help="share of the source kept for testing")
    parser.add_argument("--train-seed", type=int, default=0, help="seed of every training (fixed across curves)")
    parser.add_argument("--jobs", type=int, default=1, help="curves trained at once (processes)")
    parser.add_argument("--quick", action="store_true", help="smoke run: one seed, steps 10,20")
    parser.add_argument("--out", type=Path, default=Path("bench/results/review-queue"), help="path stem of .json/.md")
    parser.add_argument("--render", type=Path, nargs="+", help="only rebuild the tables from saved .json results "
                        "(several runs, e.g. one per seed, are joined)")
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.render:
        return render(args.render, args.out)
    if args.quick:
        args.seeds, args.steps = args.seeds[:1], [10, 20]
    steps = sorted(set(args.steps))
    if not steps or steps[0] <= 0:
        parser.error("--steps must be positive item counts")
    strategies = [s for s in args.strategies.split(",") if s]
    unknown = set(strategies) - set(STRATEGIES) - set(EXPERIMENTS)
    if unknown:
        parser.error(f"unknown strategies {', '.join(sorted(unknown))}; use {', '.join(STRATEGIES + EXPERIMENTS)}")

    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:7.1f}s] {message}", file=sys.stderr, flush=True)

    data = load_dataset(args.data if len(args.data) > 1 else args.data[0])
    results = [
        bench_source(data, source, args.seeds, steps, strategies, args.test_fraction, args.train_seed, args.jobs, log,
                     args.out.with_name(f"{args.out.name}.{source}.partial.json"))
        for source in (args.source or ["tipdm-2020-replies"])
    ]
    seconds = round(time.perf_counter() - started, 1)
    report = {"data": [str(p) for p in args.data], "train_seed": args.train_seed,
              "test_fraction": args.test_fraction, "seconds": seconds, "sources": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    write_markdown(report, args.out)
    log(f"written {args.out.with_suffix('.json')} and {args.out.with_suffix('.md')}")
    return 0


def write_markdown(report: dict[str, Any], out: Path) -> None:
    """The tables of a report, into ``out``.md and on the terminal."""
    lines = ["# Review queue against random choice", ""]
    for result in report["sources"]:
        lines += [f"## {result['source']} (pool {result['pool']}, test {result['test']}, seeds {result['seeds']})",
                  "", table(result), ""]
    lines.append(f"Run time {report['seconds']:.0f} s.")
    markdown = "\n".join(lines) + "\n"
    out.with_suffix(".md").write_text(markdown, encoding="utf-8")
    print(markdown)


def render(paths: Sequence[Path], out: Path) -> int:
    """Join saved reports (runs of the same sources with other seeds) and write their tables."""
    reports = [json.loads(path.read_text(encoding="utf-8")) for path in paths]
    joined: dict[str, dict[str, Any]] = {}
    for report in reports:
        for result in report["sources"]:
            if result["source"] not in joined:
                joined[result["source"]] = json.loads(json.dumps(result))
                continue
            into = joined[result["source"]]
            if into["steps"] != result["steps"] or into["strategies"] != result["strategies"]:
                raise SystemExit(f"{result['source']}: runs with different --steps or --strategies cannot be joined")
            for key in ("pool", "test", "test_ids", "pool_ids"):
                into[key].update(result[key])
            into["seeds"] += result["seeds"]
            into["runs"] += result["runs"]
            for metric in ("macro_f1", "kind_accuracy"):
                into["base"][metric] += result["base"][metric]
            into["base"]["per_seed"].update(result["base"]["per_seed"])
    report = {**reports[0], "seconds": sum(r["seconds"] for r in reports), "sources": list(joined.values())}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    write_markdown(report, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
