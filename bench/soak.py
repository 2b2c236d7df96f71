"""Soak run of the service: mixed traffic for a bounded time, with a batch job and a retrain in the middle.

Starts ``xinxi serve`` on a free loopback port with its own temporary data
directory (SQLite store, a small model trained first), then for
``--duration`` seconds drives it with:

- prediction clients (one item per request, items rotating through the seed corpus);
- a recording client (``POST /v1/items``, every text new), keeping each acknowledged item;
- one batch job (``POST /v1/batch``, a CSV of ``--batch-rows`` rows) early in the run;
- one retrain (``POST /v1/retrain`` with force and a reason, so that it activates a new
  version) at a third of the run; the run notes when the new version first answers.

At the end it reports requests served, errors by status, p50/p99 latency of
predictions before, during and after the retrain (and in the ten seconds
around the model switch), the memory (RSS) of the service's processes after
warm-up and at the end, and whether every acknowledged item is in the store.
It stops by itself and touches nothing but its temporary directory.

    .venv/bin/python bench/soak.py                                # 10 minutes, 2 workers
    .venv/bin/python bench/soak.py --duration 120 --json soak.json

Targets (issue 13): no 5xx, no failed request during the model switch, memory
growth under 10 %, every recorded item present afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "datasets" / "seed"
KEY = "soak-bench-key"
MAX_DURATION = 3600


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def memory_report(start: int, end: int, series: list[tuple[float, int]], switch: float | None,
                  processes_start: list[dict[str, Any]], processes_end: list[dict[str, Any]]) -> dict[str, Any]:
    """RSS after warm-up, just before the model switch, 30 s after it and at the end, with the growth.

    The new model is trained on more items than the first (the corpus and what the run recorded), so
    it may be larger: growth is given over the whole run and, as the leak check, from 30 s after the
    switch to the end, when the model no longer changes.
    """
    mb = lambda value: round(value / 2**20, 1)  # noqa: E731
    pct = lambda a, b: round(100 * (b - a) / a, 1) if a else None  # noqa: E731
    report: dict[str, Any] = {"after_warm_up": mb(start), "end": mb(end), "growth_pct": pct(start, end)}
    if switch is not None and series:
        before = [rss for t, rss in series if t < switch]
        after = [rss for t, rss in series if t >= switch + 30]
        if before:
            report["before_switch"] = mb(before[-1])
        if after:
            report["switch_plus_30s"] = mb(after[0])
            report["growth_after_switch_pct"] = pct(after[0], end)
    report["series"] = [mb(rss) for _, rss in series]
    report["processes_after_warm_up"] = processes_start
    report["processes_end"] = processes_end
    return report


def seed_items(limit: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for path in sorted(SEED.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                items.append(json.loads(line))
    step = max(len(items) // limit, 1)
    return items[::step][:limit]


def xinxi(*args: str, env: dict[str, str]) -> None:
    command = [str(Path(sys.executable).parent / "xinxi"), *args]
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)


class Log:
    """Every request's outcome, shared by the client threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rows: list[tuple[float, str, int, float]] = []  # (time, kind, status, seconds)
        self.versions: list[tuple[float, str]] = []

    def add(self, kind: str, status: int, seconds: float, version: str | None = None) -> None:
        now = time.monotonic()
        with self.lock:
            self.rows.append((now, kind, status, seconds))
            if version:
                self.versions.append((now, version))


def predict_client(base: str, items: list[dict[str, Any]], offset: int, log: Log, stop: threading.Event,
                   per_connection: int = 200) -> None:
    """One item per request; a new connection every ``per_connection`` requests, so every worker gets traffic."""
    i = offset
    while not stop.is_set():
        with httpx.Client(base_url=base, timeout=30) as client:
            for _ in range(per_connection):
                if stop.is_set():
                    break
                item = items[i % len(items)]
                i += 1
                started = time.perf_counter()
                try:
                    body = {"items": [{"title": item.get("title"), "text": item["text"]}]}
                    answer = client.post("/v1/predict", json=body)
                    status = answer.status_code
                    version = answer.json()["model_version"] if status == 200 else None
                except httpx.HTTPError:
                    status, version = 0, None  # no answer at all: counted as a failure
                log.add("predict", status, time.perf_counter() - started, version)


def record_client(base: str, items: list[dict[str, Any]], log: Log, stop: threading.Event,
                  acknowledged: list[int], sent: list[int]) -> None:
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=base, timeout=30, headers=headers) as client:
        n = 0
        while not stop.is_set():
            item = items[n % len(items)]
            record = {"title": item.get("title"), "text": f"{item['text']}\n（浸泡测试第{n}条）",
                      "topics": item.get("topics"), "kind": item.get("kind"), "adopted_level": "city",
                      "recorded_by": "soak"}
            n += 1
            sent.append(n)
            started = time.perf_counter()
            try:
                answer = client.post("/v1/items", json=record)
                status = answer.status_code
                if status == 200:
                    result = answer.json()["results"][0]
                    if result["status"] in ("added", "updated", "unchanged"):
                        acknowledged.append(int(result["id"]))
            except httpx.HTTPError:
                status = 0
            log.add("record", status, time.perf_counter() - started)
            time.sleep(0.05)


def batch_job(base: str, items: list[dict[str, Any]], rows: int, log: Log, result: dict[str, Any]) -> None:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["编号", "标题", "正文"])
    for i in range(rows):
        item = items[i % len(items)]
        writer.writerow([i, item.get("title") or "", item["text"]])
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=base, timeout=60, headers=headers) as client:
        started = time.perf_counter()
        upload = ("archive.csv", buffer.getvalue().encode("utf-8"), "text/csv")
        answer = client.post("/v1/batch", files={"file": upload})
        log.add("batch", answer.status_code, time.perf_counter() - started)
        if answer.status_code not in (200, 201, 202):
            result["state"] = f"refused {answer.status_code}"
            return
        job = answer.json()["id"]
        while True:
            state = client.get(f"/v1/batch/{job}").json()
            if state["state"] in ("done", "failed"):
                break
            time.sleep(1)
        result.update(state=state["state"], seconds=round(time.perf_counter() - started, 1), rows=rows)


def retrain_job(base: str, log: Log, result: dict[str, Any]) -> None:
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=base, timeout=60, headers=headers) as client:
        result["started"] = time.monotonic()
        answer = client.post("/v1/retrain", json={"force": True, "reason": "soak run: switch the model under load"})
        log.add("retrain", answer.status_code, 0.0)
        if answer.status_code not in (200, 201, 202):
            result["state"] = f"refused {answer.status_code}: {answer.text[:200]}"
            result["ended"] = time.monotonic()
            return
        job = answer.json()["id"]
        while True:
            state = client.get(f"/v1/jobs/{job}").json()
            if state["state"] in ("done", "failed"):
                break
            time.sleep(1)
        result["ended"] = time.monotonic()
        result.update(state=state["state"], seconds=round(result["ended"] - result["started"], 1),
                      outcome=state.get("outcome"), version=state.get("version"), error=state.get("error"))


def service_rss(pid: int) -> int:
    """RSS of the service and its worker processes, in bytes."""
    try:
        parent = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [parent, *parent.children(recursive=True)])
    except psutil.NoSuchProcess:
        return 0


def warm_up(base: str, items: list[dict[str, Any]], seconds: float = 20, in_a_row: int = 300) -> None:
    """Predict until every worker answers: ``/readyz`` reaches one worker, and another may still be loading.

    Runs for at least ``seconds`` and until ``in_a_row`` predictions in a row succeeded, so that the
    measured run starts with every worker loaded and warm (its first answers are not counted).
    """
    started, good = time.monotonic(), 0
    for i in range(10**6):
        # A new connection each time: the kernel spreads connections, not requests, over the workers.
        try:
            answer = httpx.post(f"{base}/v1/predict", json={"items": [{"text": items[i % len(items)]["text"]}]},
                                timeout=30)
        except httpx.HTTPError:
            good = 0
        else:
            good = good + 1 if answer.status_code == 200 else 0
        if good >= in_a_row and time.monotonic() - started >= seconds:
            return
        if time.monotonic() - started > 300:
            raise SystemExit("the workers did not all answer within 5 minutes of warm-up")


def sample_memory(pid: int, series: list[tuple[float, int]], stop: threading.Event, every: float = 5.0) -> None:
    """The service's RSS every few seconds, until stopped."""
    while not stop.is_set():
        series.append((time.monotonic(), service_rss(pid)))
        stop.wait(every)


def service_processes(pid: int) -> list[dict[str, Any]]:
    """Each process of the service with its RSS, to tell where memory went."""
    try:
        parent = psutil.Process(pid)
        rows = []
        for p in [parent, *parent.children(recursive=True)]:
            try:
                rows.append({"pid": p.pid, "cmd": " ".join(p.cmdline()[-2:])[-60:],
                             "rss_mb": round(p.memory_info().rss / 2**20, 1)})
            except psutil.NoSuchProcess:
                continue
        return rows
    except psutil.NoSuchProcess:
        return []


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"n": 0, "p50_ms": None, "p99_ms": None}
    ordered = sorted(values)
    return {"n": len(ordered), "p50_ms": round(1000 * statistics.median(ordered), 1),
            "p99_ms": round(1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 1)}


def stored_ids(base: str) -> set[int]:
    found: set[int] = set()
    with httpx.Client(base_url=base, timeout=60, headers={"Authorization": f"Bearer {KEY}"}) as client:
        offset = 0
        while True:
            page = client.get("/v1/items", params={"limit": 500, "offset": offset}).json()
            rows = page["items"]
            found.update(int(row["id"]) for row in rows)
            offset += len(rows)
            if not rows or offset >= page["total"]:
                return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=600, help="seconds of traffic (at most an hour)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=3, help="prediction clients")
    parser.add_argument("--batch-rows", type=int, default=5000)
    parser.add_argument("--train-items", type=int, default=10**6,
                        help="seed items the models train on (default all, as the default model; fewer is faster)")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    duration = min(args.duration, MAX_DURATION)

    items = seed_items(args.train_items)
    with tempfile.TemporaryDirectory(prefix="xinxi-soak-") as tmp:
        data_dir = Path(tmp) / "data"
        corpus = Path(tmp) / "corpus.jsonl"
        corpus.write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items), encoding="utf-8")
        port = free_port()
        env = {**os.environ, "XINXI_DATA_DIR": str(data_dir), "XINXI_API_KEYS": KEY, "XINXI_PORT": str(port),
               "XINXI_WORKERS": str(args.workers), "XINXI_MODEL_POLL_SECONDS": "1", "XINXI_ACCESS_LOG": "false",
               "XINXI_RETRAIN_DATA": str(corpus), "XINXI_RETRAIN_FOLDS": "3", "XINXI_LOG_LEVEL": "warning"}
        print(f"training the starting model on {len(items)} seed items …", file=sys.stderr)
        xinxi("train", "--data", str(corpus), "--folds", "3", env=env)
        server = subprocess.Popen([str(Path(sys.executable).parent / "xinxi"), "serve"], env=env,
                                  start_new_session=True)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)
            else:
                raise SystemExit("the service did not become ready within 3 minutes")
            warm_up(base, items)
            rss_start = service_rss(server.pid)
            processes_start = service_processes(server.pid)
            log, stop = Log(), threading.Event()
            acknowledged: list[int] = []
            sent: list[int] = []
            batch: dict[str, Any] = {}
            retrain: dict[str, Any] = {}
            threads = [threading.Thread(target=predict_client, args=(base, items, k * 97, log, stop))
                       for k in range(args.clients)]
            threads.append(threading.Thread(target=record_client, args=(base, items, log, stop, acknowledged, sent)))
            memory: list[tuple[float, int]] = []
            threads.append(threading.Thread(target=sample_memory, args=(server.pid, memory, stop)))
            started = time.monotonic()
            for thread in threads:
                thread.start()
            print(f"traffic for {duration:.0f} s on {base} ({args.workers} workers) …", file=sys.stderr)
            side = []
            time.sleep(min(30, duration / 10))
            side.append(threading.Thread(target=batch_job, args=(base, items, args.batch_rows, log, batch)))
            side[-1].start()
            time.sleep(max(0.0, started + duration / 3 - time.monotonic()))
            side.append(threading.Thread(target=retrain_job, args=(base, log, retrain)))
            side[-1].start()
            while time.monotonic() < started + duration:
                time.sleep(1)
            stop.set()
            for thread in threads + side:
                thread.join(timeout=600)
            ended = time.monotonic()
            rss_end = service_rss(server.pid)
            processes_end = service_processes(server.pid)
            found = stored_ids(base)
            model_sizes = {d.name: round(sum(f.stat().st_size for f in d.iterdir()) / 2**20, 1)
                           for d in sorted((data_dir / "models").iterdir()) if d.is_dir()}
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)

    rows = log.rows
    predictions = [(t, s, sec) for t, kind, s, sec in rows if kind == "predict"]
    versions = sorted(log.versions)
    first_version = versions[0][1] if versions else None
    switch = next((t for t, v in versions if v != first_version), None)
    r0, r1 = retrain.get("started", ended), retrain.get("ended", ended)
    phases = {
        "before retrain": [sec for t, s, sec in predictions if t < r0],
        "during retrain": [sec for t, s, sec in predictions if r0 <= t <= r1],
        "after retrain": [sec for t, s, sec in predictions if t > r1],
    }
    around_switch = [(s, sec) for t, s, sec in predictions if switch is not None and abs(t - switch) <= 10]
    statuses = Counter(f"{kind} {status}" for _, kind, status, _ in rows)
    report = {
        "duration_s": round(ended - started, 1),
        "workers": args.workers,
        "requests": len(rows),
        "by_status": dict(sorted(statuses.items())),
        "server_errors": sum(1 for _, _, s, _ in rows if s >= 500 or s == 0),
        "latency": {name: percentiles(values) for name, values in phases.items()},
        "model_switch": {
            "first_version": first_version,
            "switched_after_s": None if switch is None else round(switch - started, 1),
            "requests_within_10s": len(around_switch),
            "failed_within_10s": sum(1 for s, _ in around_switch if s != 200),
        },
        "batch_job": batch,
        "retrain": {k: v for k, v in retrain.items() if k not in ("started", "ended")},
        "model_files_mb": model_sizes,
        "rss_mb": memory_report(rss_start, rss_end, memory, switch, processes_start, processes_end),
        "items": {"sent": len(sent), "acknowledged": len(set(acknowledged)),
                  "missing_from_store": len(set(acknowledged) - found)},
    }
    print(json.dumps(report, ensure_ascii=False, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
