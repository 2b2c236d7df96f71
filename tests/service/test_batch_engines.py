"""One code path: the API, the batch command (in-process and on Dask) give the same numbers for the same items."""

from __future__ import annotations

from pathlib import Path

import pytest
from distributed import LocalCluster
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from model import Predictor
from service.batch import dask_engine
from service.cli import app
from tests.service.archives import archive_rows, read_csv, write_csv
from training.data import Item


def predict(*args: str | Path) -> None:
    result = CliRunner().invoke(app, ["predict", *map(str, args)])
    assert result.exit_code == 0, result.output


def test_api_command_and_dask_engine_give_the_same_numbers(
    client: TestClient, model_dir: Path, tmp_path: Path, corpus: list[Item], monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = archive_rows(corpus, 30)
    source = write_csv(tmp_path / "archive.csv", rows)
    predict("--model", model_dir, "--input", source, "--output", tmp_path / "local.csv")

    loads: list[Path] = []
    real_load = Predictor.load

    def counted_load(directory: Path) -> Predictor:
        loads.append(directory)
        return real_load(directory)

    monkeypatch.setattr(dask_engine, "_PREDICTORS", {})
    monkeypatch.setattr(dask_engine.Predictor, "load", counted_load)
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        predict("--model", model_dir, "--input", source, "--output", tmp_path / "dask.csv", "--engine", "dask",
                "--scheduler", cluster.scheduler_address, "--chunk-size", "4")
    assert len(loads) == 1, "the model reaches the worker once, not with each of the 8 chunks"
    assert (tmp_path / "dask.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()

    header, out = read_csv(tmp_path / "local.csv")
    scored = [dict(zip(header, row, strict=True)) for row in out if row[header.index("xinxi_error")] == ""]
    items = [{"id": r[0], "title": r[1], "text": r[2]} for r in rows if r[2]]
    response = client.post("/v1/predict", json={"items": items})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert len(results) == len(scored) == 29
    for result, row in zip(results, scored, strict=True):
        assert row["编号"] == result["id"]
        assert [float(row[f"xinxi_p_{t['label']}"]) for t in result["topics"]] == [t["probability"] for t in result["topics"]]
        assert row["xinxi_topics"] == ",".join(t["label"] for t in result["topics"] if t["selected"])
        assert row["xinxi_kind"] == result["kind"]["label"]
        assert int(row["xinxi_quality_score"]) == result["quality_score"]
