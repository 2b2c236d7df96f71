"""The terminal side of ``xinxi predict --input``: the progress bar, the summary, the resume hint."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from model import Predictor
from model.labels import describe
from service.batch.runner import BatchOptions, BatchResult, score_file


def predict_file(
    console: Console, input: Path, output: Path | None, options: BatchOptions, model_dir: Path,
    predictor: Predictor | None,
) -> BatchResult:
    """Score ``input`` into ``output`` with a progress bar (rows, rate, ETA) and print the summary."""
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
        TextColumn("{task.fields[rows]} rows · {task.fields[rate]}"), TimeRemainingColumn(), TimeElapsedColumn(),
        console=console, transient=False,
    ) as bar:
        task = bar.add_task(f"scoring {input.name}", total=None, rows="0", rate="…")
        started = time.perf_counter()
        first: list[int] = []

        def update(rows: int, total_rows: int | None, position: int, total_bytes: int | None) -> None:
            if not first:
                first.append(rows)  # a resumed run's rate counts only this run's rows
            seconds = time.perf_counter() - started
            rate = f"{(rows - first[0]) / seconds:,.0f} rows/s" if seconds > 0.5 and rows > first[0] else "…"
            if total_rows:
                bar.update(task, completed=rows, total=total_rows, rows=f"{rows:,}", rate=rate)
            else:  # rows unknown until the end (CSV, TSV): the bytes read measure progress
                bar.update(task, completed=position, total=total_bytes, rows=f"{rows:,}", rate=rate)

        result = score_file(input, output, options, model_dir=model_dir, predictor=predictor, progress=update)
        bar.update(task, completed=1, total=1)
    print_summary(console, result)
    return result


def print_summary(console: Console, result: BatchResult) -> None:
    summary: dict[str, Any] = result.summary
    rate = summary["items_per_second"]
    resumed = f", resumed after row {result.resumed_from:,}" if result.resumed_from else ""
    console.print(
        f"{summary['rows']:,} rows: {summary['scored']:,} scored, {summary['errors']:,} with an error in xinxi_error; "
        f"{summary['seconds']:.1f} s ({rate or 0:,.0f} rows/s){resumed}; model {result.model_version}",
        highlight=False,
    )
    table = Table(title="items per topic and kind")
    table.add_column("topic / kind")
    table.add_column("items", justify="right")
    for label, count in summary["topics"].items():
        table.add_row(f"{label} {'无主题' if label == 'none' else describe(label).name}", f"{count:,}")
    for label, count in summary["kinds"].items():
        name = {"news": "动态类", "analysis": "综合类"}.get(label, "—")
        table.add_row(f"kind {label} {name}", f"{count:,}")
    console.print(table)
    for row, message in summary["first_errors"][:5]:
        console.print(f"row {row}: {message}", highlight=False)
    if result.output is not None:
        console.print(f"Written to {result.output}", highlight=False)
    if result.report is not None:
        console.print(f"Report written to {result.report}", highlight=False)
