"""Quality of xinxi against the baselines, on the seed corpus or any labelled data.

Runs ``training.compare.evaluation`` (the same code as ``xinxi evaluate
--compare``) with 5-fold cross-validation and with leave-one-file-out (one
writer per file of the seed corpus), and writes the tables, xinxi's
calibration and its most confident mistakes as JSON and Markdown.

    python bench/quality.py [--data datasets/seed datasets/real] [--folds 5] [--seed 0]
                            [--split both] [--out bench/results/quality]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from training import DEFAULT_DATA, METHODS, evaluation, evaluation_markdown, load_dataset
from training.report import markdown_table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, nargs="+", default=list(DEFAULT_DATA))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", choices=("kfold", "files", "both"), default="both")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--label-names", type=Path, default=None, help="names of numeric labels (text<TAB>label)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/quality"), help="path stem of .json and .md")
    args = parser.parse_args(argv)

    names = None
    if args.label_names:
        names = [line.strip() for line in args.label_names.read_text(encoding="utf-8").splitlines() if line.strip()]
    single = args.data[0] if len(args.data) == 1 else None
    auto = names is None and single is not None and not single.is_dir()
    data = load_dataset(single or args.data, labels="auto" if auto else None, label_names=names)
    strategies = ["kfold", "files"] if args.split == "both" else [args.split]
    if "files" in strategies and not data.groups:
        strategies.remove("files")
    started = time.perf_counter()

    def progress(step: str, done: int, total: int) -> None:
        print(f"[{time.perf_counter() - started:7.1f}s] {step}", file=sys.stderr, flush=True)

    result = evaluation(
        data, strategies=strategies or ["kfold"], folds=args.folds, seed=args.seed,
        methods=[m for m in args.methods.split(",") if m], errors=True, progress=progress,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8")
    args.out.with_suffix(".md").write_text(evaluation_markdown(result), encoding="utf-8")
    for report in result.get("splits") or [result]:
        print(markdown_table(report))
    print(f"written {args.out.with_suffix('.json')} and {args.out.with_suffix('.md')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
