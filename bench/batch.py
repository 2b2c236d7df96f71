"""Batch scoring end to end (file in, file out): xinxi predict against a plain pandas apply-over-rows baseline.

Makes a synthetic archive in a temporary directory from the seed corpus
(items of about 500 characters with id, title, unit and date columns, as
CSV), trains the default model there (or takes --model), and times each
configuration as a separate process, sampling the memory of its whole
process tree (workers included):

- ``baseline``: ``pandas.read_csv`` of the whole file, ``DataFrame.apply`` of
  ``Predictor.predict_one`` over the rows, ``to_csv``: what one writes first;
- ``xinxi predict --workers 1``, ``--workers 2`` and ``--engine dask`` (a local
  cluster of 2 worker processes).

Each configuration runs ``--rounds`` times, in turn, and the table reports
medians. ``--big-rows`` then scores one larger CSV (1,000,000 rows in the
README) once with 2 workers and once with the baseline, for peak memory; the
baseline is stopped after ``--big-timeout`` seconds and reports its peak so far.

    python bench/batch.py [--rows 100000] [--rounds 3] [--big-rows 1000000] [--model DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
XINXI = [sys.executable, "-m", "service.cli"]
UNITS = ["白沙镇", "青溪县农业农村局", "县应急管理局", "城关街道", "县发展改革局", "石门乡", "县信访局"]


def write_archive(path: Path, rows: int, texts: list[tuple[str, str]]) -> None:
    """``rows`` items of 500 characters cut from the corpus texts at shifting offsets (no two alike)."""
    pool = "\n".join(text for _, text in texts)
    with path.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["编号", "标题", "正文", "报送单位", "日期"])
        for n in range(rows):
            start = (n * 137) % max(len(pool) - 500, 1)
            title = texts[n % len(texts)][0]
            writer.writerow([f"b{n}", title, pool[start : start + 500], UNITS[n % len(UNITS)],
                             f"2024-{n % 12 + 1:02d}-{n % 28 + 1:02d}"])


def measure(command: list[str], env: dict[str, str], timeout: float | None = None) -> tuple[float, float, float]:
    """Wall seconds and the peak memory (MB) of the process tree of ``command``: summed PSS and summed RSS.

    PSS (proportional set size) counts a page shared by forked workers once in
    all; the sum of RSS counts it in every process that maps it, so it
    overstates a tree of forked workers. Both are sampled every 0.2 s. A run
    past ``timeout`` seconds is stopped, and its seconds come back negative.
    """
    started = time.perf_counter()
    process = psutil.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak_pss = peak_rss = 0
    while process.poll() is None:
        pss = rss = 0
        for member in [process, *process.children(recursive=True)]:
            try:
                info = member.memory_full_info()
            except psutil.Error:
                continue
            pss += getattr(info, "pss", info.rss)
            rss += info.rss
        peak_pss, peak_rss = max(peak_pss, pss), max(peak_rss, rss)
        if timeout is not None and time.perf_counter() - started > timeout:
            for member in [*process.children(recursive=True), process]:
                member.kill()
            process.wait()
            return -(time.perf_counter() - started), peak_pss / 1e6, peak_rss / 1e6
        time.sleep(0.2)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{process.stderr.read().decode()[-2000:]}")
    return seconds, peak_pss / 1e6, peak_rss / 1e6


def baseline(model_dir: str, source: str, output: str) -> None:
    """The plain way: the whole file in pandas, one predict_one per row, the whole result written at the end."""
    import pandas as pd

    from model import Predictor

    predictor = Predictor.load(model_dir)
    frame = pd.read_csv(source, dtype=str, keep_default_na=False)

    def score(row: pd.Series) -> pd.Series:
        result = predictor.predict_one(row["正文"], row["标题"], row["编号"])
        values = {f"p_{t.label}": t.probability for t in result.topics}
        values["topics"] = ",".join(t.label for t in result.topics if t.selected)
        values["kind"] = result.kind.label if result.kind else None
        values["quality_score"] = result.quality_score
        return pd.Series(values)

    frame = frame.join(frame.apply(score, axis=1))
    frame.to_csv(output, index=False, encoding="utf-8-sig")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--big-rows", type=int, default=0, help="also score a CSV of this many rows for peak memory")
    parser.add_argument("--big-timeout", type=float, default=600,
                        help="stop the baseline's --big-rows run after this many seconds")
    parser.add_argument("--model", help="model version directory (default: train the default model in the temp dir)")
    parser.add_argument("--only", help="comma-separated subset of baseline,workers-1,workers-2,dask")
    parser.add_argument("--baseline-run", nargs=3, metavar=("MODEL", "INPUT", "OUTPUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_run:
        baseline(*args.baseline_run)
        return

    sys.path.insert(0, str(ROOT))
    from model import ModelRegistry
    from training import DEFAULT_DATA, load_items
    from training.trainer import train_version

    work = Path(tempfile.mkdtemp(prefix="xinxi-bench-batch-"))
    try:
        env = {**os.environ, "XINXI_DATA_DIR": str(work / "data"), "PYTHONPATH": str(ROOT)}
        items, _ = load_items(DEFAULT_DATA)
        model = args.model
        if model is None:
            print("training the default model ...", flush=True)
            model = str(train_version(items, registry=ModelRegistry(work / "data"), seed=0))
        source = work / "archive.csv"
        write_archive(source, args.rows, [(i.title, i.text) for i in items])
        print(f"{args.rows:,} rows, {source.stat().st_size / 1e6:.0f} MB of CSV", flush=True)
        configurations = {
            "baseline": [sys.executable, __file__, "--baseline-run", model, str(source), str(work / "base.csv")],
            "workers-1": [*XINXI, "predict", "--model", model, "--input", str(source), "--output",
                          str(work / "w1.csv"), "--workers", "1"],
            "workers-2": [*XINXI, "predict", "--model", model, "--input", str(source), "--output",
                          str(work / "w2.csv"), "--workers", "2"],
            "dask": [*XINXI, "predict", "--model", model, "--input", str(source), "--output",
                     str(work / "dask.csv"), "--engine", "dask"],
        }
        if args.only:
            configurations = {k: v for k, v in configurations.items() if k in args.only.split(",")}
        results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in configurations}
        for round_number in range(args.rounds):
            for name, command in configurations.items():
                seconds, pss, rss = measure(command, env)
                results[name].append((seconds, pss, rss))
                print(f"round {round_number + 1} {name}: {args.rows / seconds:,.0f} items/s, "
                      f"{seconds:.1f} s, peak PSS {pss:,.0f} MB, RSS {rss:,.0f} MB", flush=True)
        summary = {}
        print(f"\n| {args.rows:,} items of 500 characters | items/s (median) | runs | peak PSS (MB) | peak RSS (MB) |")
        print("|---|---:|---|---:|---:|")
        for name, runs in results.items():
            if not runs:  # --rounds 0: only the --big-rows run
                continue
            rates = [args.rows / s for s, _, _ in runs]
            summary[name] = {"items_per_second": statistics.median(rates), "runs": rates,
                             "peak_pss_mb": max(r[1] for r in runs), "peak_rss_mb": max(r[2] for r in runs)}
            print(f"| {name} | {statistics.median(rates):,.0f} | {', '.join(f'{r:,.0f}' for r in rates)} "
                  f"| {summary[name]['peak_pss_mb']:,.0f} | {summary[name]['peak_rss_mb']:,.0f} |")
        if "workers-1" in summary and "workers-2" in summary:
            ratio = summary["workers-2"]["items_per_second"] / summary["workers-1"]["items_per_second"]
            print(f"\n2 workers / 1 worker: {ratio:.2f}x")
        if args.big_rows:
            big = work / "big.csv"
            write_archive(big, args.big_rows, [(i.title, i.text) for i in items])
            for name, command in (
                ("workers-2", [*XINXI, "predict", "--model", model, "--input", str(big), "--output",
                               str(work / "big-out.csv"), "--workers", "2"]),
                ("baseline", [sys.executable, __file__, "--baseline-run", model, str(big), str(work / "big-base.csv")]),
            ):
                if args.only and name not in args.only.split(","):
                    continue
                seconds, pss, rss = measure(command, env, timeout=args.big_timeout if name == "baseline" else None)
                if seconds < 0:
                    summary[f"big-{name}"] = {"rows": args.big_rows, "stopped_after_seconds": -seconds,
                                              "peak_pss_mb": pss, "peak_rss_mb": rss}
                    print(f"{args.big_rows:,} rows {name}: stopped after {-seconds:.0f} s, peak PSS so far "
                          f"{pss:,.0f} MB, RSS {rss:,.0f} MB", flush=True)
                    continue
                summary[f"big-{name}"] = {"rows": args.big_rows, "seconds": seconds, "peak_pss_mb": pss,
                                          "peak_rss_mb": rss}
                print(f"{args.big_rows:,} rows ({big.stat().st_size / 1e9:.2f} GB) {name}: peak PSS {pss:,.0f} MB, "
                      f"RSS {rss:,.0f} MB, {seconds:.0f} s ({args.big_rows / seconds:,.0f} items/s)", flush=True)
        print(json.dumps(summary, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
