"""kill -9 of a real `xinxi serve` while clients record items: every acknowledged item is in the store."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from model import ModelRegistry
from model.text import content_hash
from service.store import Store
from tests.service.test_store import POSTGRES_URL

ROOT = Path(__file__).resolve().parents[2]
KEY = "crash-key"
CLIENTS = 6
KILL_AFTER = 60  # acknowledged items before the kill


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(data_dir: Path, database_url: str, port: int) -> subprocess.Popen[bytes]:
    env = {
        "PATH": os.environ.get("PATH", os.defpath), "HOME": os.environ.get("HOME", str(data_dir)),
        "XINXI_DATA_DIR": str(data_dir), "XINXI_DATABASE_URL": database_url, "XINXI_API_KEYS": KEY,
        "XINXI_PORT": str(port), "XINXI_MODEL_POLL_SECONDS": "0", "XINXI_LOG_LEVEL": "warning",
        "XINXI_ACCESS_LOG": "false",
    }
    process = subprocess.Popen([sys.executable, "-m", "service.cli", "serve"], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, f"xinxi serve exited with {process.returncode}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as response:
                if response.status == 200:
                    return process
        except OSError:
            assert time.monotonic() < deadline, "xinxi serve did not become ready within 60 s"
            time.sleep(0.2)  # another process: nothing to wait on but its port


def record(port: int, item: dict[str, str]) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/items", data=json.dumps(item).encode(), method="POST",
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.status)


@pytest.fixture
def crash_data_dir(model_dir: Path, tmp_path: Path) -> Path:
    root = tmp_path / "data"
    shutil.copytree(model_dir, root / "models" / model_dir.name)
    ModelRegistry(root).activate(model_dir.name)
    return root


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'xinxi.db'}"
        return
    name = f"xinxi_crash_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_kill_9_while_recording_loses_no_acknowledged_item(crash_data_dir: Path, database_url: str) -> None:
    port = free_port()
    process = serve(crash_data_dir, database_url, port)
    acknowledged: list[dict[str, str]] = []
    lock = threading.Lock()
    enough = threading.Event()

    def client(number: int) -> None:
        for sent in range(10_000):
            item = {"title": f"客户{number}", "text": f"客户{number}记录的第{sent}条信息：某镇召开会议部署工作"}
            try:
                status = record(port, item)
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                return  # the server is gone: this answer never came, so the item is not acknowledged
            if 200 <= status < 300:
                with lock:
                    acknowledged.append(item)
                    if len(acknowledged) >= KILL_AFTER:
                        enough.set()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    try:
        for thread in threads:
            thread.start()
        assert enough.wait(60), f"only {len(acknowledged)} items acknowledged in 60 s"
        os.kill(process.pid, signal.SIGKILL)  # in the middle of the clients' requests
        process.wait(10)
        for thread in threads:
            thread.join(30)
    finally:
        if process.poll() is None:
            process.kill()
    assert len(acknowledged) >= KILL_AFTER

    # SQLite recovers its WAL when the restarted service opens it (PostgreSQL recovers on its own:
    # its variant reads the store directly, which saves a second start-up of several seconds).
    restarted = serve(crash_data_dir, database_url, port) if database_url.startswith("sqlite") else None
    try:
        store = Store(database_url)
        try:
            stored = {item["content_hash"] for item in store.list_items(limit=100_000)[0]}
            total = store.count()
        finally:
            store.close()
        missing = [item for item in acknowledged if content_hash(item["title"], item["text"]) not in stored]
        assert missing == [], f"{len(missing)} of {len(acknowledged)} acknowledged items were lost"
        # Unacknowledged items may or may not have landed; none is stored twice or half.
        assert len(acknowledged) <= total <= len(acknowledged) + CLIENTS
        if restarted is not None:
            assert record(port, {"text": "重启后记录的信息"}) == 200
    finally:
        if restarted is not None:
            restarted.terminate()
            restarted.wait(20)
