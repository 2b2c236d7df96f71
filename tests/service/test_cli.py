"""Every `xinxi` subcommand: exit codes and the one-line error messages it prints."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from service.cli import app
from service.settings import get_settings
from tests.service.conftest import SAMPLE_ITEM


@pytest.fixture
def xinxi(private_data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    """A runner whose data directory holds a copy of the session model, active."""
    monkeypatch.setenv("XINXI_DATA_DIR", str(private_data_dir))
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def run(runner: CliRunner, *args: str, input: str | None = None):
    return runner.invoke(app, list(args), input=input)


def assert_fails(result, message: str, code: int = 2) -> None:
    assert result.exit_code == code, result.output
    assert message in " ".join(result.output.split()), result.output


def test_predict_text_and_standard_input(xinxi: CliRunner, model_dir: Path) -> None:
    result = run(xinxi, "predict", "--text", SAMPLE_ITEM["text"], "--title", SAMPLE_ITEM["title"])
    assert result.exit_code == 0, result.output
    line = json.loads(result.stdout.splitlines()[-1])
    assert line["model_version"] == model_dir.name and line["kind"]["label"] == "analysis"
    piped = run(xinxi, "predict", "--title", SAMPLE_ITEM["title"], input=SAMPLE_ITEM["text"])
    assert piped.exit_code == 0, piped.output
    assert json.loads(piped.stdout.splitlines()[-1])["quality_score"] == line["quality_score"]


def test_predict_errors(xinxi: CliRunner, corpus_file: Path, tmp_path: Path) -> None:
    assert_fails(run(xinxi, "predict", "--input", str(corpus_file), "--text", "正文"), "error: give either --input or --text, not both")
    assert_fails(run(xinxi, "predict", input=""), "item 1: text is empty")
    assert_fails(run(xinxi, "predict", "--text", "正文", "--model", str(tmp_path / "none")), "no model version at")
    assert_fails(run(xinxi, "predict", "--input", str(tmp_path / "missing.jsonl")), "missing.jsonl")


def test_train_errors(xinxi: CliRunner, tmp_path: Path) -> None:
    data = tmp_path / "sports.jsonl"
    data.write_text(json.dumps({"id": "1", "text": "比赛", "topics": ["sports"], "kind": "news"}) + "\n", encoding="utf-8")
    assert_fails(run(xinxi, "train", "--data", str(data)), "unknown labels: 'sports' (first at row 1, id 1)")
    usage = run(xinxi, "train", "--folds", "1")
    assert usage.exit_code == 2 and "--folds" in usage.output


def test_evaluate_a_model_and_its_errors(xinxi: CliRunner, corpus_file: Path, tmp_path: Path) -> None:
    report = tmp_path / "metrics.json"
    result = run(xinxi, "evaluate", "--data", str(corpus_file), "--report", str(report))
    assert result.exit_code == 0, result.output
    assert f"Report written to {report}" in " ".join(result.output.split())
    content = json.loads(report.read_text(encoding="utf-8"))
    assert {"topics", "kind", "calibration", "model_version"} <= set(content)
    assert_fails(
        run(xinxi, "evaluate", "--data", str(corpus_file), "--model", "x", "--compare"),
        "--model evaluates a trained version; --compare and --folds train their own: give one of them",
    )
    assert_fails(
        run(xinxi, "evaluate", "--data", str(corpus_file), "--compare", "--split", "nope"),
        "--split must be kfold, files or both, not 'nope'",
    )
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"id": "1", "text": "比赛", "topics": ["sports"]}) + "\n", encoding="utf-8")
    assert_fails(
        run(xinxi, "evaluate", "--data", str(other), "--labels", "auto"),
        "the data has labels the model does not know: sports",
    )
    assert_fails(
        run(xinxi, "evaluate", "--data", str(corpus_file), "--compare", "--split", "files", "--methods", "keyword-rules"),
        "leave-one-file-out needs a directory with at least two .jsonl files",
    )


def test_models_list_show_and_activate(xinxi: CliRunner, model_dir: Path) -> None:
    listed = run(xinxi, "models", "list")
    assert listed.exit_code == 0 and model_dir.name[:8] in listed.output and "*" in listed.output
    shown = run(xinxi, "models", "show")
    assert shown.exit_code == 0 and json.loads(shown.stdout)["version"] == model_dir.name
    assert_fails(run(xinxi, "models", "show", "nope"), "no model version at")
    assert_fails(run(xinxi, "models", "show", "../x"), "'../x' is not a model version id")
    assert_fails(run(xinxi, "models", "activate", "nope"), "no model version 'nope' in")
    activated = run(xinxi, "models", "activate", model_dir.name)
    assert activated.exit_code == 0 and f"{model_dir.name} is now active" in activated.output


def test_models_show_without_an_active_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XINXI_DATA_DIR", str(tmp_path / "empty"))
    get_settings.cache_clear()
    try:
        assert_fails(run(CliRunner(), "models", "show"), "no active model in")
        listed = run(CliRunner(), "models", "list")
        assert listed.exit_code == 0
    finally:
        get_settings.cache_clear()


def test_no_arguments_prints_help() -> None:
    result = CliRunner().invoke(app, [])
    assert result.exit_code in (0, 2) and "train" in result.output and "serve" in result.output
