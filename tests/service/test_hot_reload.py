"""A newly activated version answers from every worker of `xinxi serve --workers 2`, under load, with no failure."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from model import ModelRegistry
from tests.conftest import small_items
from tests.service.conftest import SAMPLE_ITEM
from training.trainer import train_version

SWITCH_SECONDS = 15
"""Every worker must answer with the new version this soon after ACTIVE changed (it polls every 0.5 s)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def readiness(base: str) -> dict | None:
    """One /readyz on a fresh connection, so that either worker may take it."""
    try:
        response = httpx.get(f"{base}/readyz", headers={"Connection": "close"}, timeout=5)
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


def versions_by_worker(base: str, want: int, deadline: float, version: str | None = None) -> dict[int, str]:
    """Ask /readyz until ``want`` workers answered (each with ``version``, when given)."""
    seen: dict[int, str] = {}
    while time.monotonic() < deadline:
        ready = readiness(base)
        if ready is not None:
            seen[ready["worker"]] = ready["model_version"]
            if len(seen) >= want and (version is None or set(seen.values()) == {version}):
                return seen
        time.sleep(0.05)
    return seen


def test_every_worker_switches_to_a_newly_activated_version_without_a_failed_request(
    private_data_dir: Path, model_dir: Path, tmp_path: Path
) -> None:
    registry = ModelRegistry(private_data_dir)
    second = train_version(small_items()[::5], registry=registry, activate=False, folds=2).name
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("XINXI_")},
        "XINXI_DATA_DIR": str(private_data_dir), "XINXI_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}",
        "XINXI_MODEL_POLL_SECONDS": "0.5", "XINXI_ACCESS_LOG": "false", "XINXI_LOG_LEVEL": "warning",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--workers", "2", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )
    results: list[tuple[float, int, str | None]] = []
    stop = threading.Event()

    def keep_asking() -> None:
        while not stop.is_set():
            try:
                response = httpx.post(f"{base}/v1/predict", json={"items": [SAMPLE_ITEM]},
                                      headers={"Connection": "close"}, timeout=10)
                version = response.json().get("model_version") if response.status_code == 200 else None
                results.append((time.monotonic(), response.status_code, version))
            except httpx.HTTPError as exc:
                results.append((time.monotonic(), 0, repr(exc)))

    try:
        before = versions_by_worker(base, 2, time.monotonic() + 120)
        assert len(before) == 2, f"two workers did not come up: {before}"
        assert set(before.values()) == {model_dir.name}
        threads = [threading.Thread(target=keep_asking) for _ in range(2)]
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        registry.activate(second, why="hot reload test")  # what `xinxi models activate` does
        switched_at = time.monotonic()
        after = versions_by_worker(base, 2, switched_at + SWITCH_SECONDS, version=second)
        confirmed = time.monotonic()
        time.sleep(1.0)
        stop.set()
        for thread in threads:
            thread.join(20)
    finally:
        stop.set()
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
    assert len(after) == 2 and set(after.values()) == {second}, (
        f"not every worker answered with {second} within {SWITCH_SECONDS} s: {after}")
    assert set(after) == set(before)  # the same two processes: no restart
    failed = [r for r in results if r[1] != 200]
    assert failed == [] and len(results) > 20
    assert {version for _, _, version in results} == {model_dir.name, second}
    assert all(version == second for at, _, version in results if at > confirmed)
