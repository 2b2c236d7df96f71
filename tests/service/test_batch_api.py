"""Batch jobs over HTTP: upload, progress, result and report; limits; jobs that outlive the service."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from service.app import create_app
from service.batch import BatchInterrupted, BatchOptions, score_file
from service.cli import app as cli
from service.jobs import JobStore
from tests.service.archives import archive_rows, write_csv
from tests.service.conftest import make_settings, started
from training.data import Item

KEY = "batch-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory, corpus: list[Item]) -> Path:
    return write_csv(tmp_path_factory.mktemp("upload") / "2024年信息.csv", archive_rows(corpus), encoding="gbk")


def wait_done(client: TestClient, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        job = client.get(f"/v1/batch/{job_id}", headers=AUTH).json()
        if job["state"] in ("done", "failed"):
            return job
        assert time.monotonic() < deadline, f"job still {job['state']} after 60 s"
        time.sleep(0.05)


def upload(client: TestClient, path: Path, name: str | None = None, **form: str) -> Any:
    with path.open("rb") as stream:
        return client.post("/v1/batch", headers=AUTH, files={"file": (name or path.name, stream)}, data=form)


def test_a_job_scores_the_upload_like_the_command_and_survives_a_restart(
    archive: Path, private_data_dir: Path, model_dir: Path, tmp_path: Path
) -> None:
    settings = make_settings(private_data_dir, tmp_path, api_keys=KEY)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        started(client)
        with archive.open("rb") as stream:
            assert client.post("/v1/batch", files={"file": (archive.name, stream)}).status_code == 401
        response = upload(client, archive)
        assert response.status_code == 202, response.text
        job = response.json()
        assert job["filename"] == "2024年信息.csv" and job["state"] in ("queued", "running", "done")
        job = wait_done(client, job["id"])
        assert job["state"] == "done", job
        assert job["summary"]["rows"] == 40 and job["summary"]["errors"] == 1 and job["progress"] == 1.0
        assert client.get(f"/v1/batch/{job['id']}").status_code == 401, "job endpoints need the key too"
        result = client.get(job["result_url"], headers=AUTH)
        assert result.status_code == 200
        assert "filename*=UTF-8''2024%E5%B9%B4%E4%BF%A1%E6%81%AF-xinxi.csv" in result.headers["content-disposition"]
        report = client.get(job["report_url"], headers=AUTH)
        assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
        assert "各单位的主题与类型" in report.text

    command_output = tmp_path / "command.csv"
    run = CliRunner().invoke(cli, ["predict", "--model", str(model_dir), "--input", str(archive),
                                   "--output", str(command_output)])
    assert run.exit_code == 0, run.output
    assert result.content == command_output.read_bytes(), "the API job and the command write the same file"

    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        again = client.get(f"/v1/batch/{job['id']}", headers=AUTH).json()
        assert again["state"] == "done" and again["summary"] == job["summary"]
        assert client.get(job["result_url"], headers=AUTH).content == result.content


def test_a_job_cut_short_by_a_restart_resumes_at_the_next_start(
    archive: Path, private_data_dir: Path, model_dir: Path, tmp_path: Path
) -> None:
    store = JobStore(private_data_dir / "jobs")
    job = store.create("cut.csv", "csv", "csv", {})
    store.input_path(job).write_bytes(archive.read_bytes())
    chunks: list[int] = []

    def stop_after_two_chunks(rows: int, *_: Any) -> None:
        chunks.append(rows)
        if len(chunks) == 3:
            raise KeyboardInterrupt

    with pytest.raises(BatchInterrupted):
        score_file(store.input_path(job), store.output_path(job), BatchOptions(chunk_size=10),
                   model_dir=model_dir, progress=stop_after_two_chunks)
    store.update(job["id"], state="running")  # as the service left it when it stopped

    settings = make_settings(private_data_dir, tmp_path, api_keys=KEY)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        started(client)
        done = wait_done(client, job["id"])
        assert done["state"] == "done", done
        assert done["summary"]["rows"] == 40
        result = client.get(done["result_url"], headers=AUTH).content
    whole = tmp_path / "whole.csv"
    score_file(store.input_path(job), whole, BatchOptions(), model_dir=model_dir)
    assert result == whole.read_bytes()


def test_uploads_are_checked_and_names_are_never_paths(
    archive: Path, private_data_dir: Path, tmp_path: Path
) -> None:
    settings = make_settings(private_data_dir, tmp_path, api_keys=KEY, max_upload_bytes=archive.stat().st_size + 4096)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        started(client)
        wrong_type = upload(client, archive, "items.exe")
        assert wrong_type.status_code == 422 and wrong_type.json()["error"]["code"] == "invalid_file"
        disguised = upload(client, archive, "items.xlsx")
        assert disguised.status_code == 422
        assert "should be XLSX but its contents look like text" in disguised.json()["error"]["message_en"]
        unknown = upload(client, archive, text_col="全文内容")
        assert unknown.status_code == 422
        assert "no column '全文内容' (--text-col); the columns are 编号, 标题, 正文" in unknown.json()["error"]["message_en"]
        assert str(private_data_dir) not in unknown.text, "no server path in the message"
        big = tmp_path / "big.csv"
        big.write_bytes(archive.read_bytes() * 3)
        too_big = upload(client, big)
        assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "body_too_large"

        sneaky = upload(client, archive, "../../../escape.csv")
        assert sneaky.status_code == 202, sneaky.text
        job = wait_done(client, sneaky.json()["id"])
        assert job["filename"] == "escape.csv" and job["state"] == "done"
        assert not (tmp_path / "escape.csv").exists() and not list(private_data_dir.rglob("escape*"))
        assert sorted(p.name for p in (private_data_dir / "jobs" / job["id"]).iterdir()) == [
            "input.csv", "job.json", "output.csv", "report.html"
        ]
        assert client.get("/v1/batch/..%2F..%2Fetc", headers=AUTH).status_code == 404
        assert client.get("/v1/batch/" + "0" * 32, headers=AUTH).status_code == 404
        assert len(list((private_data_dir / "jobs").iterdir())) == 1, "refused uploads leave nothing behind"
        waiting = JobStore(private_data_dir / "jobs").create("w.csv", "csv", "csv", {})
        not_done = client.get(f"/v1/batch/{waiting['id']}/result", headers=AUTH)
        assert not_done.status_code == 409 and not_done.json()["error"]["code"] == "job_not_done"
