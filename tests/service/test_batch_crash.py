"""kill -9 of a real `xinxi serve` in the middle of an API batch job: the next start resumes the job,
and its result equals an uninterrupted run's, byte for byte."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from model import Predictor
from service.batch import BatchOptions, score_file
from service.jobs import JobStore
from tests.service.archives import archive_rows, write_csv
from training.data import Item

ROOT = Path(__file__).resolve().parents[2]
KEY = "crash-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
COPIES = 200  # 8,000 rows: the job chunks are 1,000 rows; the kill comes after the first checkpoint, well before the end


@pytest.fixture(scope="module")
def big_archive(tmp_path_factory: pytest.TempPathFactory, corpus: list[Item]) -> Path:
    rows = archive_rows(corpus)
    many = [[f"{row[0]}-{n}", *row[1:]] for n in range(COPIES) for row in rows]
    return write_csv(tmp_path_factory.mktemp("crash") / "2024年信息.csv", many)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Server:
    """`xinxi serve` as its own process on a loopback port, its output in a file."""

    def __init__(self, data_dir: Path, log: Path) -> None:
        self.port = free_port()
        env = {name: value for name, value in os.environ.items() if not name.startswith("XINXI_")}
        env.update({
            "XINXI_DATA_DIR": str(data_dir), "XINXI_API_KEYS": KEY, "XINXI_HOST": "127.0.0.1",
            "XINXI_PORT": str(self.port), "XINXI_ACCESS_LOG": "false", "XINXI_MODEL_POLL_SECONDS": "0",
        })
        self.log = log
        with log.open("ab") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "service.cli", "serve"], cwd=ROOT, env=env,
                stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"the server exited: {self.log.read_text(errors='replace')}"
            try:
                if self.client.get("/readyz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"not ready within 90 s: {self.log.read_text(errors='replace')}")

    def job(self, job_id: str) -> dict[str, Any]:
        job: dict[str, Any] = self.client.get(f"/v1/batch/{job_id}", headers=AUTH).json()
        return job

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        self.client.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        self.client.close()


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()


def test_kill_9_during_a_batch_job_leaves_a_job_that_resumes_to_the_uninterrupted_result(
    big_archive: Path, private_data_dir: Path, model_dir: Path, predictor: Predictor, tmp_path: Path,
    servers: list[Server],
) -> None:
    log = tmp_path / "serve.log"
    first = Server(private_data_dir, log)
    servers.append(first)
    first.wait_ready()
    with big_archive.open("rb") as stream:
        response = first.client.post("/v1/batch", headers=AUTH, files={"file": (big_archive.name, stream)})
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]

    deadline = time.monotonic() + 90
    while (job := first.job(job_id))["rows"] < 1000:  # at least one chunk checkpointed
        assert job["state"] in ("queued", "running"), job
        assert time.monotonic() < deadline, f"no progress within 90 s: {job}"
        time.sleep(0.02)
    first.kill()

    store = JobStore(private_data_dir / "jobs")
    stored = store.load(job_id)
    assert stored is not None and stored["state"] == "running", stored
    resume_file = store.output_path(stored).with_name("output.csv.resume.json")
    checkpoint = json.loads(resume_file.read_text(encoding="utf-8"))["rows"]
    assert 1000 <= checkpoint < COPIES * 40, f"killed at row {checkpoint}: not in the middle of the job"

    second = Server(private_data_dir, log)
    servers.append(second)
    second.wait_ready()
    deadline = time.monotonic() + 120
    while (job := second.job(job_id))["state"] not in ("done", "failed"):
        assert time.monotonic() < deadline, f"job still {job['state']} after 120 s"
        time.sleep(0.1)
    assert job["state"] == "done", job
    assert job["summary"]["rows"] == COPIES * 40
    result = second.client.get(job["result_url"], headers=AUTH)
    assert result.status_code == 200
    assert f"batch job {job_id} was interrupted by a restart; resuming it" in log.read_text(errors="replace")

    whole = tmp_path / "whole.csv"
    score_file(store.input_path(stored), whole, BatchOptions(), model_dir=model_dir, predictor=predictor)
    assert result.content == whole.read_bytes(), "the resumed job wrote what an uninterrupted run writes"
    assert not resume_file.exists()
