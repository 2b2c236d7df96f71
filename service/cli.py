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
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from model import ModelRegistry, Predictor, XinxiError, describe_error
from model.artifact import umask_mode
from service.errors import ServiceError
from service.settings import get_settings

app = typer.Typer(help="xinxi: topic tags and quality scores for 政务信息 items.", no_args_is_help=True)
models_app = typer.Typer(help="List, inspect, compare, activate and roll back model versions.", no_args_is_help=True)
app.add_typer(models_app, name="models")
corpus_app = typer.Typer(help="Build and check the real-items corpus (datasets/real).", no_args_is_help=True)
app.add_typer(corpus_app, name="corpus")
console = Console(stderr=True)
WORKER_HEALTHCHECK_SECONDS = 60


def fail(message: str, code: int = 2) -> NoReturn:
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def errors_to_messages() -> Iterator[None]:
    """Print project errors as one plain line and exit 2; no traceback for expected failures."""
    try:
        yield
    except XinxiError as exc:
        fail(str(exc))
    except ServiceError as exc:  # raised by the service's own checks, e.g. a version that cannot load
        fail(exc.message_en)
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


def default_data() -> list[Path]:
    """The files or directories the default model is trained on (training.DEFAULT_DATA, one or several)."""
    import training

    data = training.DEFAULT_DATA
    return [Path(data)] if isinstance(data, (str, Path)) else [Path(path) for path in data]


def load_predictor(model_dir: Path | None) -> Predictor:
    """The model in ``model_dir``, or the active one (trained from datasets/ when there is none)."""
    if model_dir is not None:
        return Predictor.load(model_dir)
    reg = registry()
    if reg.active_id() is None:
        return Predictor.load(_train_default(reg))
    return Predictor.load(reg.active_path())


def _train_default(reg: ModelRegistry) -> Path:
    """Train the default model into the registry (when none is active yet), with a progress bar."""
    import training

    sources = ", ".join(map(str, default_data()))
    console.print(f"No model yet in {reg.models}: training the default model from {sources}.")
    with progress_bar("training the default model") as update:
        return training.ensure_active_model(reg, training.DEFAULT_DATA, progress=update)


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


def write_output(path: Path, content: str, what: str) -> None:
    """Write ``content`` to ``path`` whole or not at all, and say so on standard error."""
    with atomic_output(path) as stream:
        stream.write(content)
    console.print(f"{what} written to {path}")


def write_json_report(path: Path, report: dict[str, Any]) -> None:
    write_output(path, json.dumps(report, ensure_ascii=False, indent=2), "Report")


def _read_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def label_options(labels: str | None, label_names: Path | None) -> tuple[Any, list[str] | None]:
    """The label set (None, "auto" or a list read from a file) and the names of numeric labels."""
    names = _read_lines(label_names) if label_names else None
    label_set: Any = labels
    if labels and labels != "auto":
        label_set = _read_lines(Path(labels))
    elif names and not labels:
        label_set = names
    return label_set, names


# Options shared by several commands.
ModelOption = Annotated[Path | None, typer.Option("--model", help="model version directory (default: active)")]
SeedOption = Annotated[int, typer.Option(help="seed of the folds and the estimators")]
LabelsOption = Annotated[
    str | None, typer.Option(help="'auto' takes the topic set from the data; a file lists one label a line")
]
LabelNamesOption = Annotated[Path | None, typer.Option(help="label names for numeric labels of text<TAB>label files")]
ReportOption = Annotated[Path | None, typer.Option(help="write the metrics as JSON here")]
MarkdownOption = Annotated[Path | None, typer.Option(help="write the tables and diagnostics as Markdown here")]


@app.command()
def train(
    data: Annotated[
        list[Path] | None,
        typer.Option(help="labelled file or directory of .jsonl; repeat for several (default: datasets/seed and "
                          "datasets/real)"),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="write the version to this new directory instead of the registry")
    ] = None,
    seed: SeedOption = 0,
    folds: Annotated[int, typer.Option(min=2, max=20, help="cross-validation folds")] = 5,
    labels: LabelsOption = None,
    label_names: LabelNamesOption = None,
    activate: Annotated[bool, typer.Option(help="make the new version active (registry only)")] = True,
    skip_invalid: Annotated[bool, typer.Option(help="skip invalid rows instead of refusing the file")] = False,
) -> None:
    """Train a model version from labelled items."""
    import training

    with errors_to_messages():
        paths = list(data or default_data())
        source = ", ".join(map(str, paths))
        label_set, names = label_options(labels, label_names)
        items, skipped = training.load_items(
            paths[0] if len(paths) == 1 else paths, require_labels=True, skip_invalid=skip_invalid,
            label_names=names,
        )
        for row, reason in skipped:
            console.print(f"skipped row {row}: {reason}", highlight=False)
        console.print(f"Training on {len(items)} items from {source} (seed {seed}, {folds} folds).")
        with progress_bar("training") as update:
            directory = training.train_version(
                items, registry=None if out else registry(), out=out, activate=activate,
                data_source=source, seed=seed, folds=folds, labels=label_set, progress=update,
            )
        manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
        _print_metrics(manifest["metrics"]["cross_validation"], f"{folds}-fold cross-validation")
        state = " (active)" if activate and not out else ""
        console.print(f"Saved model {manifest['version']} in {directory}{state}")
        print(directory)


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
    data: Annotated[
        list[Path],
        typer.Option(help="labelled file or directory (a directory of .jsonl: one group per file); repeat for several"),
    ],
    model_dir: ModelOption = None,
    report: ReportOption = None,
    markdown: MarkdownOption = None,
    compare: Annotated[
        bool, typer.Option("--compare", help="cross-validate xinxi and the baselines side by side")
    ] = False,
    folds: Annotated[
        int | None, typer.Option(min=2, max=20, help="cross-validate xinxi (with --compare, every method) in K folds")
    ] = None,
    seed: SeedOption = 0,
    split: Annotated[str, typer.Option(help="kfold, files (leave one .jsonl file out) or both")] = "kfold",
    by_source: Annotated[
        bool,
        typer.Option("--by-source", help="hold out each source (the items' `source` field) in turn, beside the "
                                         "seed-only model"),
    ] = False,
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
    labels: LabelsOption = None,
    label_names: LabelNamesOption = None,
) -> None:
    """Evaluate a model version on labelled items, or cross-validate xinxi against baselines (--compare)."""
    import training

    with errors_to_messages():
        label_set, names = label_options(labels, label_names)
        target: Any = data[0] if len(data) == 1 else data
        if compare or folds is not None or test is not None or by_source:
            if model_dir is not None:
                fail("--model evaluates a trained version; --compare and --folds train their own: give one of them"
                     if not by_source else "--model evaluates a trained version; --by-source trains its own: "
                     "give one of them")
            if by_source and test is not None:
                fail("--by-source holds out each source of --data; --test gives a separate test set: give one")
            strategy = "sources" if by_source else "test" if test else split
            _cross_validate(
                target, compare, folds or 5, seed, strategy, methods, errors, top, label_set, names,
                report, markdown, test,
            )
            return
        predictor = load_predictor(model_dir)
        items, _ = training.load_items(target, require_labels=True, label_names=names)
        with progress_bar("scoring") as update:
            predictions = training.score_items(
                predictor, items, progress=lambda done, total: update(f"{done} items", done, total)
            )
        metrics = training.evaluate_model(predictor, items, predictions)
        _print_metrics(metrics, f"model {predictor.version} on {data}")
        if errors or markdown or report:
            metrics.update(training.diagnose(items, predictions, predictor.topic_labels, top if errors else 0))
            text = training.diagnostics_markdown(metrics)
            if errors:
                _print_markdown(text)
            if markdown:
                write_output(markdown, f"# Model {predictor.version} on {data}\n\n{text}", "Markdown")
        if report:
            write_json_report(report, metrics)


def _print_markdown(text: str) -> None:
    from rich.markdown import Markdown

    console.print(Markdown(text))


def _cross_validate(
    data: Path | list[Path], compare: bool, folds: int, seed: int, split: str, methods: str | None, errors: bool,
    top: int, label_set: Any, names: list[str] | None, report: Path | None, markdown: Path | None,
    test: Path | None = None,
) -> None:
    """``evaluate --compare`` / ``--folds``: train and test every method on the same splits."""
    import training

    strategies = ["kfold", "files"] if split == "both" else [split]
    if any(s not in training.SPLITS for s in strategies) and split != "test":
        fail(f"--split must be kfold, files or both, not {split!r}")
    dataset = training.load_dataset(data, labels=label_set, label_names=names)
    with_seed = training.SEED_SOURCE in set(dataset.sources or [])
    reference = [training.SEED_ONLY] if split == "sources" and with_seed else []
    chosen = [*(training.METHODS if compare else ["xinxi"]), *reference]
    if methods:
        chosen = [m.strip() for m in methods.split(",") if m.strip()]
    known = (*training.METHODS, training.SEED_ONLY)
    unknown = [m for m in chosen if m not in known]
    if unknown:
        fail(f"unknown methods {', '.join(unknown)}; choose from {', '.join(known)}")
    if test is not None:
        dataset = training.with_test_set(dataset, test, label_names=names)
    console.print(
        f"Cross-validating {', '.join(chosen)} on {len(dataset)} items from {data} ({', '.join(strategies)})."
    )
    with progress_bar("evaluating") as update:
        result = training.evaluation(
            dataset, strategies=strategies, folds=folds, seed=seed, methods=chosen, errors=errors,
            per_label=top, progress=update,
        )
    for entry in result.get("splits") or [result]:
        title, columns, rows = training.comparison_table(entry)
        table = Table(title=title)
        table.add_column("metric")
        for column in columns:
            table.add_column(column, justify="right", overflow="fold")
        for row in rows:
            table.add_row(*row)
        console.print(table)
        calibration = entry.get("calibration")
        if calibration:
            briers = "  ".join(f"{label} {e['brier']:.3f}" for label, e in calibration["topics"].items())
            kind = f"  kind {calibration['kind']['brier']:.3f}" if calibration.get("kind") else ""
            console.print(f"xinxi Brier score: {briers}{kind}")
        if "per_source" in entry:
            header, rows = training.by_source_rows(entry)
            table = Table(title="by held-out source (label cells: F1 (positives))")
            for column in header:
                table.add_column(column, justify="left" if column in ("held-out source", "method") else "right")
            for row in rows:
                table.add_row(*row)
            console.print(table)
        if errors and "errors" in entry:
            _print_markdown(training.errors_markdown(entry["errors"]))
    if report:
        write_json_report(report, result)
    if markdown:
        write_output(markdown, training.evaluation_markdown(result), "Markdown")


@app.command()
def predict(
    input: Annotated[Path | None, typer.Option(help="items to score: CSV/TSV, XLSX, JSONL or Parquet")] = None,
    output: Annotated[
        Path | None, typer.Option(help="the input's rows and columns with the scores (default: JSONL on stdout)")
    ] = None,
    text: Annotated[str | None, typer.Option(help="the text of one item")] = None,
    title: Annotated[str | None, typer.Option(help="the title of that item")] = None,
    model_dir: ModelOption = None,
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
        with progress_bar("scoring") as update:
            results = predictor.predict_batched(
                items, progress=lambda done, total: update(f"{done} items", done, total)
            )
        lines = "".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in results)
        if output is None:
            sys.stdout.write(lines)
        else:
            write_output(output, lines, f"{len(results)} results")


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


def open_migrated_store() -> Any:
    """The settings' store, upgraded to the newest migration (every command that uses the store calls this)."""
    from service.store import open_store

    store = open_store(get_settings())
    store.migrate()
    return store


@app.command()
def adopt(
    file: Annotated[Path, typer.Argument(help="CSV/TSV, XLSX, JSONL or Parquet file of items, as for xinxi train")],
    level: Annotated[
        str | None,
        typer.Option(help="adopted level of rows whose file gives none: none, county, city, province (县级/市级/省级)"),
    ] = None,
    recorded_by: Annotated[str | None, typer.Option(help="who records the items (kept in their history)")] = None,
    report: Annotated[
        Path | None, typer.Option(help="write the row-by-row report (row, status, item id, reason) to this CSV")
    ] = None,
) -> None:
    """Record the items of a file in the store: adopted items (采用) and labels for retraining.

    Rows that cannot be recorded are listed with their row number and reason; the
    others are stored. Running it again on the same file adds nothing twice. Exits
    1 when any row was rejected.
    """
    from service.store.importer import import_file

    with errors_to_messages():
        if level is not None:
            from service.store import RejectedItem
            from service.store.records import parse_level

            try:
                parse_level(level)
            except RejectedItem as exc:
                fail(f"--level: {exc}")
        store = open_migrated_store()
        try:
            with progress_bar(f"recording {file.name}") as update:
                result = import_file(store, file, level=level, recorded_by=recorded_by, progress=update)
        finally:
            store.close()
        for row in result.rows:
            if row.status == "rejected":
                where = f"row {row.row}" if row.row is not None else "file"
                console.print(f"rejected {where}: {row.reason}", highlight=False, soft_wrap=True)
        if report is not None:
            result.write_csv(report)
            console.print(f"row-by-row report written to {report}")
        print(result.summary())
        if result.counts["rejected"]:
            raise typer.Exit(1)


@app.command()
def migrate() -> None:
    """Upgrade the store's database to the newest schema (the service and xinxi adopt also do it on start)."""
    from service.store import open_store
    from service.store.database import head_revision

    with errors_to_messages():
        store = open_store(get_settings())
        try:
            before = store.revision()
            store.migrate()
            after = store.revision()
        finally:
            store.close()
        if before == after:
            print(f"{store.display_url}: already at revision {after} (head {head_revision()})")
        else:
            print(f"{store.display_url}: upgraded from revision {before or '(none)'} to {after}")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="address to listen on (XINXI_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="port (XINXI_PORT)")] = None,
    workers: Annotated[int | None, typer.Option(help="worker processes (XINXI_WORKERS)")] = None,
) -> None:
    """Start the API and the editor page, training the default model first if none exists."""
    import uvicorn

    settings = get_settings()
    prepare_model_in_child()
    from service.store import open_store

    store = open_store(settings)
    try:
        store.migrate()
    except ServiceError:
        console.print(f"[yellow]warning:[/] the store at {store.display_url} does not answer: recording answers 503 "
                      "until it does; prediction works", highlight=False)
    finally:
        store.close()
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
            log_config=_log_config(settings.log_level),
            access_log=settings.access_log,
            # uvicorn kills a worker that does not answer its supervisor's ping within this time, and a
            # worker answers only once it has imported xinxi: 5 s (uvicorn's default) killed every worker
            # again and again on a busy two-core machine, so that `--workers 2` never came up.
            timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
        )
    finally:
        if private_metrics is not None:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
            shutil.rmtree(private_metrics, ignore_errors=True)


def _log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging, with xinxi's own loggers on its handler and at XINXI_LOG_LEVEL.

    Without it only warnings of ``xinxi.*`` reached the terminal (through Python's
    last-resort handler): "model loaded", "batch job resumed" were lost.
    """
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["xinxi"] = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    return config


def prepare_model_in_child() -> None:
    """Make sure the active model exists and predicts, in a child process, so that this one holds no model.

    ``xinxi serve`` with several workers keeps its first process as uvicorn's
    supervisor, which answers no request: a model loaded (or trained) there
    would stay in its memory for nothing. The child trains the default model
    if there is none (with its progress bar), loads and warms the active one,
    and exits; each worker then loads its own copy.
    """
    import multiprocessing

    checker = multiprocessing.get_context("spawn").Process(target=_prepare_model, name="xinxi-model-check")
    checker.start()
    checker.join()
    if checker.exitcode != 0:
        raise typer.Exit(2)


def _prepare_model() -> None:
    """The child of :func:`prepare_model_in_child`: exit code 0 once the active model has loaded and predicted."""
    from service.active_model import load_and_warm

    try:
        with errors_to_messages():
            try:
                reg = registry()
                if reg.active_id() is not None:
                    load_and_warm(reg.active_path())
                    return
                load_and_warm(_train_default(reg))
            except (XinxiError, ServiceError, OSError):
                raise
            except Exception as exc:  # noqa: BLE001 - a malformed model may raise anything; say it in one line
                fail(f"the active model cannot be loaded: {describe_error(exc)}")
    except typer.Exit as exc:
        sys.exit(exc.exit_code)


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


@corpus_app.command("build")
def corpus_build(
    raw: Annotated[list[Path], typer.Argument(help="collected items: .jsonl files or directories of them")],
    labels: Annotated[Path, typer.Option(help="directory with pass-a.jsonl, pass-b.jsonl, adjudication.jsonl")],
    out: Annotated[Path | None, typer.Option(help="where the collections go (default: datasets/real)")] = None,
) -> None:
    """Clean, de-duplicate and label collected real items into one .jsonl per collection."""
    import training

    with errors_to_messages():
        try:
            report = training.build_corpus(raw, labels, training.SEED_DATA, out or training.REAL_DATA)
        except ValueError as exc:
            fail(str(exc))
        console.print_json(json.dumps(report, ensure_ascii=False))


@corpus_app.command("check")
def corpus_check(
    real: Annotated[Path | None, typer.Option(help="the real-items directory (default: datasets/real)")] = None,
    labels: Annotated[
        Path | None, typer.Option(help="the labelling passes and third reading (default: datasets/labels)")
    ] = None,
) -> None:
    """Check the real items (provenance, labels against both passes, duplicates) and print their composition."""
    import training

    with errors_to_messages():
        try:
            problems, report = training.check_corpus(
                real or training.REAL_DATA, training.SEED_DATA, labels or training.LABELS_DATA
            )
        except (ValueError, KeyError) as exc:
            fail(f"cannot read the corpus: {exc}")
        console.print_json(json.dumps(report, ensure_ascii=False))
        for problem in problems[:50]:
            console.print(str(problem), highlight=False)
        if problems:
            fail(f"{len(problems)} problems in the real corpus")


@models_app.command("list")
def models_list() -> None:
    """List the model versions in the data directory."""
    reg = registry()
    active = reg.active_id()
    table = Table(title=f"models in {reg.models}")
    # The version id is its creation time (UTC), so there is no separate column for it.
    for column in ("version", "items", "macro F1", "kind acc.", "store ≤", "gate", "active"):
        table.add_column(column, no_wrap=column in ("version", "gate"))
    for manifest in reg.versions():
        cv = manifest.get("metrics", {}).get("cross_validation", {})
        store = (manifest.get("training_data") or {}).get("store") or {}
        evaluation = manifest.get("evaluation") or {}
        gate = ("-" if not evaluation else "forced" if evaluation.get("forced")
                else "passed" if evaluation.get("against") else "first")
        table.add_row(
            manifest["version"], str(manifest["training_data"]["items"]),
            f"{cv.get('topics', {}).get('macro_f1', float('nan')):.3f}",
            f"{cv['kind']['accuracy']:.3f}" if "kind" in cv else "-",
            str(store.get("up_to_change", "-")), gate,
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
        for entry in reg.audit_log():
            if entry["version"] == path.name:
                console.print(_audit_line(entry), highlight=False)


ReasonOption = Annotated[str | None, typer.Option(help="why; recorded in the audit log")]


def _audit_line(entry: dict[str, Any]) -> str:
    return (f"{entry.get('since', entry.get('at')) or 'before the audit log began'}: {entry['version']} "
            f"({entry.get('action')}, from {entry.get('previous') or 'none'}) by {entry.get('who') or 'unknown'}"
            + (f": {entry['why']}" if entry.get("why") else ""))


@models_app.command("activate")
def models_activate(
    version: Annotated[str, typer.Argument(help="version id to make active")], reason: ReasonOption = None
) -> None:
    """Make a version the active one, once it has loaded and predicted; running services pick it up."""
    from service.active_model import load_version
    from service.retraining import os_identity

    with errors_to_messages():
        reg = registry()
        load_version(reg, version)
        reg.activate(version, who=os_identity(), why=reason, action="activate")
        console.print(f"{version} is now active")


@models_app.command("rollback")
def models_rollback(reason: ReasonOption = None) -> None:
    """Activate again the version that was active before the current one (from the audit log)."""
    from service.active_model import load_version
    from service.retraining import os_identity

    with errors_to_messages():
        reg = registry()
        current, previous = reg.active_id(), reg.previous_id()
        if previous is None:
            fail("the audit log records no version active before the current one; use `xinxi models activate V`")
        load_version(reg, previous)
        reg.activate(previous, who=os_identity(), why=reason or f"rollback from {current}", action="rollback")
        console.print(f"{previous} is active again (was {current})")


@models_app.command("at")
def models_at(
    time: Annotated[str, typer.Argument(help="ISO 8601: 2026-03-03T10:00 (UTC) or 2026-03-03T18:00+08:00")],
) -> None:
    """Which version was active at a time: so, which model tagged an item then (from the audit log)."""
    with errors_to_messages():
        try:
            found = registry().active_at(time)
        except ValueError as exc:
            fail(str(exc))
        if found is None:
            fail(f"no model version is recorded as active at {time}")
        console.print(_audit_line(found), highlight=False)
        print(found["version"])


@models_app.command("diff")
def models_diff(
    first: Annotated[str, typer.Argument(help="a version id")],
    second: Annotated[str, typer.Argument(help="another version id")],
) -> None:
    """Two versions side by side: per-label metrics on the held-out set, and how many stored items change tags."""
    import training
    from model.artifact import read_manifest
    from service.retraining import store_snapshot

    with errors_to_messages():
        settings = get_settings()
        reg = registry()
        manifests = [read_manifest(reg.path(v)) for v in (first, second)]
        predictors = [Predictor.load(reg.path(v)) for v in (first, second)]
        holdout_path = settings.retrain_holdout or training.HOLDOUT_DATA
        holdout = training.load_items(holdout_path, require_labels=True)[0] if Path(holdout_path).exists() else []
        store = open_migrated_store()
        try:
            records, _ = store_snapshot(store)
        finally:
            store.close()
        with progress_bar("scoring both versions") as update:
            update("held-out set and stored items", 0, 1)
            report = training.diff_models(predictors[0], predictors[1], holdout, records)
            update("done", 1, 1)
        table = Table(title=f"{first} vs {second}")
        for column in ("", first, second, "change"):
            table.add_column(column, justify="left" if not column else "right")
        cv = [m.get("metrics", {}).get("cross_validation", {}).get("topics", {}) for m in manifests]
        table.add_row("manifest: macro F1 (cross-validated)",
                      *[f"{c.get('macro_f1', float('nan')):.3f}" for c in cv], "")
        verdict = report["holdout"]
        if verdict is not None:
            for what, row in verdict["metrics"].items():
                table.add_row(f"holdout ({verdict['items']}): {what}", f"{row['active']:.3f}",
                              f"{row['candidate']:.3f}", f"{row['change']:+.3f}")
            for label, row in verdict["per_label"].items():
                table.add_row(f"holdout: {label} F1 ({row['support']})", f"{row['active']:.3f}",
                              f"{row['candidate']:.3f}", f"{row['change']:+.3f}")
        console.print(table)
        stored = report["stored"]
        moves = ", ".join(f"{label} +{stored['gained'][label]}/-{stored['lost'][label]}" for label in stored["gained"])
        console.print(f"stored items: {stored['changed']} of {stored['items']} change tags "
                      f"({stored['kind_changed']} change kind; per topic gained/lost: {moves})", highlight=False)
        print(json.dumps(report, ensure_ascii=False))


@app.command()
def retrain(
    force: Annotated[bool, typer.Option("--force", help="promote even if the gate refuses (needs --reason)")] = False,
    reason: ReasonOption = None,
) -> None:
    """Retrain on the corpus and the stored items; the new version replaces the active one only past the gate."""
    from service.retraining import Retrainer, os_identity

    with errors_to_messages():
        if force and not (reason or "").strip():
            fail("--force promotes a model the gate may refuse: give the reason with --reason")
        store = open_migrated_store()
        try:
            retrainer = Retrainer(get_settings(), store, registry())
            job, lock = retrainer.begin(trigger="cli", who=os_identity(), reason=reason, force=force)
            console.print(f"Retrain job {job['id']} (a separate process; Ctrl-C stops it and changes nothing).")
            with progress_bar("retraining") as update:
                job = retrainer.run(job, lock, progress=lambda stage, share: update(stage, round(share * 100), 100))
        finally:
            store.close()
        _print_retrain(job)
        if job["state"] == "failed":
            fail(f"the retrain failed: {job['error']}")
        if job["outcome"] == "kept":
            raise typer.Exit(1)


def _print_retrain(job: dict[str, Any]) -> None:
    report = job.get("report") or {}
    for verdict in report.get("sets", []):
        if not verdict.get("metrics"):
            continue
        table = Table(title=f"{verdict['set']} ({verdict['items']} items): active vs candidate")
        for column in ("", "active", "candidate", "change"):
            table.add_column(column, justify="left" if not column else "right")
        for what, row in verdict["metrics"].items():
            table.add_row(what, f"{row['active']:.3f}", f"{row['candidate']:.3f}", f"{row['change']:+.3f}")
        for label, row in verdict["per_label"].items():
            table.add_row(f"{label} F1 ({row['support']})", f"{row['active']:.3f}", f"{row['candidate']:.3f}",
                          f"{row['change']:+.3f}")
        console.print(table)
    for reason in report.get("reasons", []):
        console.print(f"gate: {reason}", highlight=False)
    outcome = job.get("outcome")
    if outcome in ("promoted", "forced"):
        console.print(f"{job['version']} is now active ({outcome})")
    elif outcome == "kept":
        note = report.get("note") or "the gate refused the candidate: the active model stays"
        console.print(note, highlight=False)


@models_app.command("convert")
def models_convert(
    version: Annotated[str, typer.Argument(help="a version in the old pickle format (model.joblib)")],
    yes: Annotated[bool, typer.Option("--yes", help="do not ask: the files are trusted")] = False,
) -> None:
    """Convert a version of the old pickle format once into a new version that cannot run code when loaded."""
    from model.legacy import convert_pickled_version
    from service.active_model import load_version
    from service.retraining import os_identity

    with errors_to_messages():
        reg = registry()
        console.print(
            f"[bold yellow]warning:[/] converting unpickles {reg.path(version)}/model.joblib, and unpickling runs "
            "any code written into the file. Convert only a version you trust: one that xinxi wrote in a data "
            "directory nobody else can write. Otherwise retrain with `xinxi train`.",
            highlight=False, soft_wrap=True,
        )
        if not yes and not typer.confirm("Convert it?", default=False, err=True):
            fail("not converted")
        new_version = convert_pickled_version(reg, version)
        load_version(reg, new_version)  # it must load and predict in the new format before anything points at it
        console.print(f"{version} converted into the new version {new_version} (JSON and .npz)")
        if reg.active_id() == version:
            reg.activate(new_version, who=os_identity(), why=f"converted from {version}", action="convert")
            console.print(f"{new_version} is now active in place of {version}")
        else:
            console.print(f"activate it with `xinxi models activate {new_version}`")
        print(new_version)


if __name__ == "__main__":
    app()
