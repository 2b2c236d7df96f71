"""The ``xinxi`` command: train, evaluate, predict, serve, models."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from model import ModelRegistry, Predictor, XinxiError
from model.artifact import umask_mode
from service.settings import get_settings

app = typer.Typer(help="xinxi: topic tags and quality scores for 政务信息 items.", no_args_is_help=True)
models_app = typer.Typer(help="List, inspect and activate model versions.", no_args_is_help=True)
app.add_typer(models_app, name="models")
console = Console(stderr=True)


def fail(message: str, code: int = 2) -> None:
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def errors_to_messages() -> Iterator[None]:
    """Print project errors as one plain line and exit 2; no traceback for expected failures."""
    try:
        yield
    except XinxiError as exc:
        fail(str(exc))
    except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        fail(f"{exc.strerror}: {exc.filename}")


@contextmanager
def progress_bar(description: str) -> Iterator[Any]:
    """A rich progress bar; yields a ``progress(step, done, total)`` callback."""
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(), console=console, transient=False,
    ) as bar:
        task = bar.add_task(description, total=None)

        def update(step: str, done: int, total: int) -> None:
            bar.update(task, description=f"{description}: {step}", completed=done, total=total or None)

        yield update


def registry() -> ModelRegistry:
    return ModelRegistry(get_settings().data_dir)


def load_predictor(model_dir: Path | None, train_if_missing: bool = True) -> Predictor:
    """The model in ``model_dir``, or the active one (trained from datasets/ when there is none)."""
    if model_dir is not None:
        return Predictor.load(model_dir)
    from training import DEFAULT_DATA, ensure_active_model

    reg = registry()
    if reg.active_id() is None:
        if not train_if_missing:
            fail(f"no active model in {reg.models}; run `xinxi train`")
        console.print(f"No model yet in {reg.models}: training the default model from {DEFAULT_DATA}.")
        with progress_bar("training the default model") as update:
            return Predictor.load(ensure_active_model(reg, DEFAULT_DATA, progress=update))
    return Predictor.load(reg.active_path())


@contextmanager
def atomic_output(path: Path) -> Iterator[Any]:
    """Write to a temporary file beside ``path`` and rename it in place only on success."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            yield stream
        os.chmod(temporary, umask_mode())  # mkstemp's 0600 would hide the file from colleagues
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@app.command()
def train(
    data: Annotated[
        Path | None, typer.Option(help="labelled file or directory of .jsonl (default: datasets/seed)")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="write the version to this new directory instead of the registry")
    ] = None,
    seed: Annotated[int, typer.Option(help="seed for folds and estimators")] = 0,
    folds: Annotated[int, typer.Option(min=2, max=20, help="cross-validation folds")] = 5,
    labels: Annotated[
        str | None, typer.Option(help="'auto' takes the topic set from the data; a file lists one label a line")
    ] = None,
    label_names: Annotated[
        Path | None, typer.Option(help="label names for numeric labels of text<TAB>label files")
    ] = None,
    activate: Annotated[bool, typer.Option(help="make the new version active (registry only)")] = True,
    skip_invalid: Annotated[bool, typer.Option(help="skip invalid rows instead of refusing the file")] = False,
) -> None:
    """Train a model version from labelled items."""
    from training import DEFAULT_DATA, load_items, train_version

    with errors_to_messages():
        source = data or DEFAULT_DATA
        names = _read_lines(label_names) if label_names else None
        items, skipped = load_items(source, require_labels=True, skip_invalid=skip_invalid, label_names=names)
        for row, reason in skipped:
            console.print(f"skipped row {row}: {reason}", highlight=False)
        label_set: Any = labels
        if labels and labels != "auto":
            label_set = _read_lines(Path(labels))
        elif names and not labels:
            label_set = names
        console.print(f"Training on {len(items)} items from {source} (seed {seed}, {folds} folds).")
        with progress_bar("training") as update:
            directory = train_version(
                items, registry=None if out else registry(), out=out, activate=activate,
                data_source=str(source), seed=seed, folds=folds, labels=label_set, progress=update,
            )
        manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
        _print_metrics(manifest["metrics"]["cross_validation"], f"{folds}-fold cross-validation")
        state = " (active)" if activate and not out else ""
        console.print(f"Saved model {manifest['version']} in {directory}{state}")
        print(directory)


def _read_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _print_metrics(report: dict[str, Any], title: str) -> None:
    table = Table(title=title)
    for column in ("label", "precision", "recall", "F1", "ROC-AUC", "support"):
        table.add_column(column, justify="right" if column != "label" else "left")
    topics = report["topics"]
    for label, entry in topics["per_label"].items():
        table.add_row(
            label, f"{entry['precision']:.3f}", f"{entry['recall']:.3f}", f"{entry['f1']:.3f}",
            "-" if entry.get("roc_auc") is None else f"{entry['roc_auc']:.3f}", str(entry["support"]),
        )
    console.print(table)
    console.print(
        f"topics: micro F1 {topics['micro_f1']:.3f}  macro F1 {topics['macro_f1']:.3f}  "
        f"subset accuracy {topics['subset_accuracy']:.3f}  no-topic F1 {topics['no_topic_f1']:.3f}"
    )
    if "kind" in report:
        kind = report["kind"]
        auc = "-" if kind["roc_auc"] is None else f"{kind['roc_auc']:.3f}"
        console.print(f"kind: accuracy {kind['accuracy']:.3f}  F1(analysis) {kind['f1']:.3f}  ROC-AUC {auc}")


@app.command()
def evaluate(
    data: Annotated[Path, typer.Option(help="labelled file or directory (a directory of .jsonl: one group per file)")],
    model_dir: Annotated[Path | None, typer.Option("--model", help="model version directory (default: active)")] = None,
    report: Annotated[Path | None, typer.Option(help="write the metrics as JSON here")] = None,
    markdown: Annotated[Path | None, typer.Option(help="write the tables and diagnostics as Markdown here")] = None,
    compare: Annotated[
        bool, typer.Option("--compare", help="cross-validate xinxi and the baselines side by side")
    ] = False,
    folds: Annotated[
        int | None, typer.Option(min=2, max=20, help="cross-validate xinxi (with --compare, every method) in K folds")
    ] = None,
    seed: Annotated[int, typer.Option(help="seed of the folds and the estimators")] = 0,
    split: Annotated[str, typer.Option(help="kfold, files (leave one .jsonl file out) or both")] = "kfold",
    test: Annotated[
        Path | None, typer.Option(help="with --compare: train every method on --data, score it on this separate set")
    ] = None,
    methods: Annotated[
        str | None, typer.Option(help="comma-separated subset of xinxi,sklearn-baseline,keyword-rules,fasttext")
    ] = None,
    errors: Annotated[
        bool, typer.Option("--errors", help="show the most confident mistakes and the topic confusions")
    ] = False,
    top: Annotated[int, typer.Option(min=1, max=50, help="mistakes shown per label with --errors")] = 5,
    labels: Annotated[
        str | None, typer.Option(help="'auto' takes the topic set from the data; a file lists one label a line")
    ] = None,
    label_names: Annotated[
        Path | None, typer.Option(help="label names for numeric labels of text<TAB>label files")
    ] = None,
) -> None:
    """Evaluate a model version on labelled items, or cross-validate xinxi against baselines (--compare)."""
    from training import evaluate_model, load_items
    from training.evaluate import score_items

    with errors_to_messages():
        names = _read_lines(label_names) if label_names else None
        label_set: Any = labels
        if labels and labels != "auto":
            label_set = _read_lines(Path(labels))
        if compare or folds is not None or test is not None:
            if model_dir is not None:
                fail("--model evaluates a trained version; --compare and --folds train their own: give one of them")
            _cross_validate(
                data, compare, folds or 5, seed, "test" if test else split, methods, errors, top, label_set, names,
                report, markdown, test,
            )
            return
        predictor = load_predictor(model_dir)
        items, _ = load_items(data, require_labels=True, label_names=names)
        with progress_bar("scoring") as update:
            update(f"{len(items)} items", 0, len(items))
            predictions = score_items(predictor, items)
            update(f"{len(items)} items", len(items), len(items))
        try:
            metrics = evaluate_model(predictor, items, predictions)
        except ValueError as exc:
            fail(str(exc))
        _print_metrics(metrics, f"model {predictor.version} on {data}")
        if errors or markdown or report:
            from training.diagnostics import (
                calibration_from_predictions,
                calibration_markdown,
                error_analysis,
                errors_markdown,
            )

            metrics["calibration"] = calibration_from_predictions(items, predictions, predictor.topic_labels)
            text = calibration_markdown(metrics["calibration"])
            if errors:
                metrics["errors"] = error_analysis(items, predictions, predictor.topic_labels, top)
                text += "\n" + errors_markdown(metrics["errors"])
                _print_markdown(text)
            if markdown:
                with atomic_output(markdown) as stream:
                    stream.write(f"# Model {predictor.version} on {data}\n\n{text}")
                console.print(f"Markdown written to {markdown}")
        if report:
            with atomic_output(report) as stream:
                json.dump(metrics, stream, ensure_ascii=False, indent=2)
            console.print(f"Report written to {report}")


def _print_markdown(text: str) -> None:
    from rich.markdown import Markdown

    console.print(Markdown(text))


def _cross_validate(
    data: Path, compare: bool, folds: int, seed: int, split: str, methods: str | None, errors: bool, top: int,
    label_set: Any, names: list[str] | None, report: Path | None, markdown: Path | None, test: Path | None = None,
) -> None:
    """``evaluate --compare`` / ``--folds``: train and test every method on the same splits."""
    from training.compare import (
        METHODS,
        SPLITS,
        evaluation,
        evaluation_markdown,
        load_dataset,
        split_title,
        table_rows,
        with_test_set,
    )
    from training.diagnostics import errors_markdown

    strategies = list(SPLITS) if split == "both" else [split]
    if any(s not in SPLITS for s in strategies) and split != "test":
        fail(f"--split must be kfold, files or both, not {split!r}")
    chosen = list(METHODS) if compare else ["xinxi"]
    if methods:
        chosen = [m.strip() for m in methods.split(",") if m.strip()]
    unknown = [m for m in chosen if m not in METHODS]
    if unknown:
        fail(f"unknown methods {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    dataset = load_dataset(data, labels=label_set, label_names=names)
    if test is not None:
        dataset = with_test_set(dataset, test, label_names=names)
    console.print(
        f"Cross-validating {', '.join(chosen)} on {len(dataset)} items from {data} ({', '.join(strategies)})."
    )
    with progress_bar("evaluating") as update:
        result = evaluation(
            dataset, strategies=strategies, folds=folds, seed=seed, methods=chosen, errors=errors,
            per_label=top, progress=update,
        )
    out = console
    for entry in result.get("splits") or [result]:
        header, rows = table_rows(entry)
        # One column per method, one row per metric: fits a terminal whatever the number of labels.
        table = Table(title=split_title(entry))
        table.add_column("metric")
        for row in rows:
            table.add_column(row[0], justify="right", overflow="fold")
        for number, metric in enumerate(header[1:], 1):
            table.add_row(metric, *(row[number] for row in rows))
        out.print(table)
        calibration = entry.get("calibration")
        if calibration:
            briers = "  ".join(f"{label} {e['brier']:.3f}" for label, e in calibration["topics"].items())
            kind = f"  kind {calibration['kind']['brier']:.3f}" if calibration.get("kind") else ""
            out.print(f"xinxi Brier score: {briers}{kind}")
        if errors and "errors" in entry:
            _print_markdown(errors_markdown(entry["errors"]))
    if report:
        with atomic_output(report) as stream:
            json.dump(result, stream, ensure_ascii=False, indent=2)
        console.print(f"Report written to {report}")
    if markdown:
        with atomic_output(markdown) as stream:
            stream.write(evaluation_markdown(result))
        console.print(f"Markdown written to {markdown}")


@app.command()
def predict(
    input: Annotated[Path | None, typer.Option(help="items to score: CSV/TSV, XLSX, JSONL or Parquet")] = None,
    output: Annotated[
        Path | None, typer.Option(help="the input's rows and columns with the scores (default: JSONL on stdout)")
    ] = None,
    text: Annotated[str | None, typer.Option(help="the text of one item")] = None,
    title: Annotated[str | None, typer.Option(help="the title of that item")] = None,
    model_dir: Annotated[Path | None, typer.Option("--model", help="model version directory (default: active)")] = None,
    text_col: Annotated[str | None, typer.Option(help="column of the text (default: text, 正文, 内容 ...)")] = None,
    title_col: Annotated[str | None, typer.Option(help="column of the title (default: title, 标题 ...)")] = None,
    id_col: Annotated[str | None, typer.Option(help="column of the id (default: id, 编号 ...)")] = None,
    unit_col: Annotated[str | None, typer.Option(help="column of the unit, for --report (default: 单位 ...)")] = None,
    date_col: Annotated[str | None, typer.Option(help="column of the date, for --report (default: 日期 ...)")] = None,
    format: Annotated[str | None, typer.Option(help="output format: csv, tsv, xlsx, jsonl, parquet")] = None,
    input_format: Annotated[str | None, typer.Option(help="input format when the extension does not say")] = None,
    encoding: Annotated[str | None, typer.Option(help="encoding of a CSV/TSV/JSONL input (default: detected)")] = None,
    sheet: Annotated[str | None, typer.Option(help="the sheet of an XLSX workbook with several")] = None,
    workers: Annotated[int, typer.Option(min=1, max=64, help="worker processes, each loading the model once")] = 1,
    chunk_size: Annotated[int, typer.Option(min=1, max=100_000, help="rows read, scored and written at a time")] = 1000,
    resume: Annotated[bool, typer.Option("--resume", help="continue an interrupted run into the same output")] = False,
    engine: Annotated[str, typer.Option(help="local (this machine) or dask")] = "local",
    scheduler: Annotated[str | None, typer.Option(help="Dask scheduler address (default: a local cluster)")] = None,
    report: Annotated[Path | None, typer.Option(help="write an HTML overview (per topic, kind, unit, month)")] = None,
) -> None:
    """Score a file of items (every row kept, scores added), one item from --text, or text on standard input."""
    with errors_to_messages():
        if input is not None and text is not None:
            fail("give either --input or --text, not both")
        if input is not None:
            from service.batch import BatchOptions

            _predict_file(input, output, model_dir, workers, engine, BatchOptions(
                text_col=text_col, title_col=title_col, id_col=id_col, unit_col=unit_col, date_col=date_col,
                format=format, input_format=input_format, encoding=encoding, sheet=sheet, workers=workers,
                chunk_size=chunk_size, resume=resume, engine=engine, scheduler=scheduler, report=report,
            ))
            return
        if text is not None:
            items = [{"id": None, "title": title, "text": text}]
        else:
            if sys.stdin.isatty():
                fail("give --input FILE, --text TEXT, or pipe an item's text to standard input")
            items = [{"id": None, "title": title, "text": sys.stdin.read()}]
        predictor = load_predictor(model_dir)
        lines = (json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in predictor.predict(items))
        if output is None:
            sys.stdout.writelines(lines)
        else:
            with atomic_output(output) as stream:
                stream.writelines(lines)
            console.print(f"result written to {output}")


def _predict_file(
    input: Path, output: Path | None, model_dir: Path | None, workers: int, engine: str, options: Any
) -> None:
    """``predict --input``: the archive tool of service/batch, with the model loaded where it is used."""
    from service.batch import BatchInterrupted, predict_file

    predictor = None
    if model_dir is None:
        reg = registry()
        in_process = workers == 1 and engine == "local"
        predictor = load_predictor(None) if in_process or reg.active_id() is None else None
        model_dir = reg.active_path()
    elif workers == 1 and engine == "local":
        predictor = Predictor.load(model_dir)
    try:
        predict_file(console, input, output, options, model_dir, predictor)
    except BatchInterrupted as exc:
        fail(str(exc), code=130)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="address to listen on (XINXI_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="port (XINXI_PORT)")] = None,
    workers: Annotated[int | None, typer.Option(help="worker processes (XINXI_WORKERS)")] = None,
) -> None:
    """Start the API and the editor page, training the default model first if none exists."""
    import uvicorn

    settings = get_settings()
    with errors_to_messages():
        load_predictor(None)
    workers = workers or settings.workers
    private_metrics = _share_metrics_between_workers(settings.data_dir) if workers > 1 else None
    console.print(f"Editor page: http://{host or settings.host}:{port or settings.port}/")
    try:
        uvicorn.run(
            "service.app:create_app",
            factory=True,
            host=host or settings.host,
            port=port or settings.port,
            workers=workers,
            log_level=settings.log_level,
            access_log=settings.access_log,
        )
    finally:
        if private_metrics is not None:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
            shutil.rmtree(private_metrics, ignore_errors=True)


def _share_metrics_between_workers(data_dir: Path) -> Path | None:
    """Turn on prometheus_client's multiprocess mode, so /metrics sums every worker.

    A directory the user named in PROMETHEUS_MULTIPROC_DIR is used as it is and
    never emptied: it may hold anything. Otherwise each run gets a fresh
    directory of its own under ``data_dir/prometheus``, returned so that the
    caller removes it afterwards.
    """
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return None
    parent = data_dir / "prometheus"
    parent.mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=parent))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    return directory


@models_app.command("list")
def models_list() -> None:
    """List the model versions in the data directory."""
    reg = registry()
    active = reg.active_id()
    table = Table(title=f"models in {reg.models}")
    for column in ("version", "created", "items", "macro F1", "kind acc.", "active"):
        table.add_column(column)
    for manifest in reg.versions():
        cv = manifest.get("metrics", {}).get("cross_validation", {})
        table.add_row(
            manifest["version"], manifest.get("created_at", "?"), str(manifest["training_data"]["items"]),
            f"{cv.get('topics', {}).get('macro_f1', float('nan')):.3f}",
            f"{cv['kind']['accuracy']:.3f}" if "kind" in cv else "-",
            "*" if manifest["version"] == active else "",
        )
    Console().print(table)


@models_app.command("show")
def models_show(version: Annotated[str | None, typer.Argument(help="version id (default: active)")] = None) -> None:
    """Print a version's manifest."""
    from model.artifact import read_manifest

    with errors_to_messages():
        reg = registry()
        path = reg.path(version) if version else reg.active_path()
        print(json.dumps(read_manifest(path), ensure_ascii=False, indent=2))


@models_app.command("activate")
def models_activate(version: Annotated[str, typer.Argument(help="version id to make active")]) -> None:
    """Make a version the active one, once it has loaded and predicted; running services pick it up."""
    from model.artifact import read_manifest
    from service.active_model import load_and_warm

    with errors_to_messages():
        reg = registry()
        path = reg.path(version)
        read_manifest(path)  # a missing or unknown version keeps its own message
        # Every running service follows the pointer, so it only moves to a version that works.
        try:
            load_and_warm(path)
        except Exception as exc:  # noqa: BLE001 - a malformed bundle may raise anything
            fail(f"model {version} cannot be loaded, so the active model was not changed: {exc}")
        reg.activate(version)
        console.print(f"{version} is now active")


if __name__ == "__main__":
    app()
