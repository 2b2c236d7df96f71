"""Memory of `xinxi serve`: the supervising process and each worker, once the model is loaded and has scored.

Starts ``xinxi serve --workers N`` on a free loopback port over a data
directory that already has an active model (``--data-dir``, or
``XINXI_DATA_DIR``), waits until every worker answers ``/readyz`` with 200,
sends 200 prediction requests of one 500-character item each,
then samples each process of the tree with psutil: RSS (resident pages,
shared ones counted in every process that maps them), PSS (shared pages
divided among the processes that share them) and USS (pages of that process
alone). Several rounds; medians per role. Stops the server itself.

    .venv/bin/python bench/serve_memory.py --data-dir ~/.local/share/xinxi --workers 2
    .venv/bin/python bench/serve_memory.py --xinxi /other/checkout/.venv/bin/xinxi   # another build, same data

Loopback only; every wait is bounded.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load import free_port, sample_bodies  # noqa: E402 - the load benchmark's items and port helper

START_TIMEOUT = 300
MB = 1024 * 1024


def wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    """Until /readyz answers 200 thirty times in a row, each on a new connection.

    Every worker accepts connections on the shared socket while its model
    loads in the background, so a worker that is not ready yet would answer
    one of thirty requests with 503 all but surely.
    """
    deadline = time.monotonic() + START_TIMEOUT
    in_a_row = 0
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"xinxi serve exited with {process.returncode} before it was ready")
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as response:
                in_a_row = in_a_row + 1 if response.status == 200 else 0
        except (urllib.error.URLError, OSError):
            in_a_row = 0
        if in_a_row >= 30:
            return
        time.sleep(0.05 if in_a_row else 0.5)
    raise SystemExit(f"xinxi serve was not ready within {START_TIMEOUT} s")


def predict(url: str, body: str) -> None:
    request = urllib.request.Request(
        url + "/v1/predict", data=body.encode("utf-8"), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


def sample(root: psutil.Process) -> dict[str, list[dict[str, float]]]:
    """Memory of the supervisor and of each worker (children that are not multiprocessing helpers)."""
    roles: dict[str, list[dict[str, float]]] = {"supervisor": [], "worker": [], "helper": []}
    for process in [root, *root.children(recursive=True)]:
        try:
            info = process.memory_full_info()
            command = " ".join(process.cmdline())
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        role = "supervisor" if process.pid == root.pid else "helper" if "resource_tracker" in command else "worker"
        roles[role].append({"pid": process.pid, "rss": info.rss / MB, "pss": info.pss / MB, "uss": info.uss / MB})
    return roles


def one_round(xinxi: str, data_dir: Path, workers: int, bodies: list[str]) -> dict[str, list[dict[str, float]]]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "XINXI_DATA_DIR": str(data_dir), "XINXI_ACCESS_LOG": "false", "XINXI_LOG_LEVEL": "warning"}
    process = subprocess.Popen(
        [xinxi, "serve", "--port", str(port), "--workers", str(workers)], env=env, stderr=subprocess.DEVNULL
    )
    try:
        wait_ready(url, process)
        for body in bodies:
            predict(url, body)
        time.sleep(1.0)
        return sample(psutil.Process(process.pid))
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=os.environ.get("XINXI_DATA_DIR"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--xinxi", default=str(Path(sys.executable).with_name("xinxi")), help="the xinxi executable")
    parser.add_argument("--json", type=Path, help="write the samples here too")
    args = parser.parse_args()
    if args.data_dir is None:
        raise SystemExit("give --data-dir (or XINXI_DATA_DIR) with an active model")
    bodies = sample_bodies(200)
    rounds = []
    for number in range(1, args.rounds + 1):
        roles = one_round(args.xinxi, args.data_dir, args.workers, bodies)
        rounds.append(roles)
        line = "  ".join(
            f"{role} {e['rss']:.0f}/{e['pss']:.0f}/{e['uss']:.0f}" for role in ("supervisor", "worker")
            for e in roles[role]
        )
        print(f"round {number} (RSS/PSS/USS MB): {line}", flush=True)
    print(f"medians over {len(rounds)} rounds, {args.workers} workers (MB):")
    for role in ("supervisor", "worker", "helper"):
        entries = [e for r in rounds for e in r[role]]
        if entries:
            medians = {key: statistics.median(e[key] for e in entries) for key in ("rss", "pss", "uss")}
            print(f"  {role:10s} each: RSS {medians['rss']:.0f}  PSS {medians['pss']:.0f}  USS {medians['uss']:.0f}"
                  f"  ({len(entries) // len(rounds)} per round)")
    totals = [sum(e["rss"] for role in r.values() for e in role) for r in rounds]
    print(f"  all processes: RSS summed {statistics.median(totals):.0f}")
    if args.json:
        args.json.write_text(json.dumps(rounds, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
