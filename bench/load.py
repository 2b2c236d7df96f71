"""Load benchmark of the HTTP service: 50 clients, single 500-character items, on loopback.

Starts ``xinxi serve`` in a subprocess on a free loopback port (training the
default model into a temporary data directory first unless ``XINXI_DATA_DIR``
or ``--data-dir`` already has an active one), waits for ``/readyz``, warms up,
then drives it with ``wrk`` (Debian package ``wrk``; C, so the load generator
takes little of the CPU the server needs) for a bounded time, several runs.
Each request carries one item cut from the seed corpus to 500 characters;
the items rotate, so nothing is served from a cache.

    .venv/bin/python bench/load.py                 # 3 runs of 30 s, 50 clients, 2 workers
    .venv/bin/python bench/load.py --runs 1 --duration 10 --workers 1

Prints one line per run and the medians; ``--json FILE`` writes them too.
Targets on the 2-core reference machine: no errors, p99 <= 100 ms, >= 200 requests/s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "datasets" / "seed"
ITEM_CHARS = 500
MAX_DURATION = 120
MAX_CLIENTS = 200

LUA = r"""
local bodies = {
%s
}
local counter = 0
local headers = {["Content-Type"] = "application/json"}

request = function()
  counter = counter %% #bodies + 1
  return wrk.format("POST", "/v1/predict", headers, bodies[counter])
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\nRESULT {"requests": %%d, "duration_us": %%d, "p50_us": %%d, "p90_us": %%d, "p99_us": %%d, ' ..
    '"max_us": %%d, "connect": %%d, "read": %%d, "write": %%d, "status": %%d, "timeout": %%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sample_bodies(count: int = 200) -> list[str]:
    """Request bodies of one item each, text cut (or joined) to 500 characters."""
    texts: list[tuple[str, str]] = []
    for path in sorted(SEED.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                texts.append((record.get("title") or "", record["text"]))
    if not texts:
        raise SystemExit(f"no items in {SEED}")
    bodies = []
    for index in range(count):
        title, text = texts[index * 7 % len(texts)]
        position = index
        while len(text) < ITEM_CHARS:
            position += 1
            text += texts[position % len(texts)][1]
        item = {"id": f"bench-{index}", "title": title, "text": text[:ITEM_CHARS]}
        bodies.append(json.dumps({"items": [item]}, ensure_ascii=False))
    return bodies


def lua_script(bodies: list[str]) -> str:
    def quoted(body: str) -> str:
        level = "=" * 3
        assert f"]{level}]" not in body
        return f"[{level}[{body}]{level}]"

    return LUA % ",\n".join(quoted(b) for b in bodies)


def wait_ready(url: str, server: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"xinxi serve exited with {server.returncode} before it was ready")
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    raise SystemExit(f"xinxi serve was not ready after {timeout:.0f} s")


def run_wrk(url: str, script: Path, clients: int, threads: int, duration: int) -> dict[str, float]:
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{clients}",
        f"-d{duration}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url + "/v1/predict",
    ]
    output = subprocess.run(command, check=True, capture_output=True, text=True, timeout=duration + 60).stdout
    line = next(line for line in output.splitlines() if line.startswith("RESULT "))
    raw = json.loads(line[len("RESULT ") :])
    seconds = raw["duration_us"] / 1e6
    errors = raw["connect"] + raw["read"] + raw["write"] + raw["status"] + raw["timeout"]
    return {
        "requests": raw["requests"],
        "rps": raw["requests"] / seconds,
        "p50_ms": raw["p50_us"] / 1000,
        "p90_ms": raw["p90_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=int, default=30, help="seconds per run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--data-dir", type=Path, default=None, help="data dir with an active model")
    parser.add_argument("--json", type=Path, default=None, help="write the runs and medians here")
    args = parser.parse_args()
    if not 1 <= args.clients <= MAX_CLIENTS or not 1 <= args.duration <= MAX_DURATION:
        raise SystemExit(f"--clients must be 1..{MAX_CLIENTS} and --duration 1..{MAX_DURATION}")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")

    temporary = None
    data_dir = args.data_dir or (Path(os.environ["XINXI_DATA_DIR"]) if os.environ.get("XINXI_DATA_DIR") else None)
    if data_dir is None:
        temporary = tempfile.mkdtemp(prefix="xinxi-bench-")
        data_dir = Path(temporary)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "XINXI_DATA_DIR": str(data_dir),
        "XINXI_LOG_LEVEL": "warning",
        "XINXI_ACCESS_LOG": "false",
        "XINXI_MODEL_POLL_SECONDS": "5",
    }
    command = [
        sys.executable,
        "-m",
        "service.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(args.workers),
    ]
    server = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)
    results = []
    try:
        wait_ready(url, server, timeout=600)
        with tempfile.NamedTemporaryFile("w", suffix=".lua", encoding="utf-8", delete=False) as stream:
            stream.write(lua_script(sample_bodies()))
            script = Path(stream.name)
        run_wrk(url, script, args.clients, args.threads, 3)  # warm-up: every worker, every code path
        print(f"{args.clients} clients, {args.duration} s per run, {args.workers} workers, wrk -t{args.threads}")
        for run in range(1, args.runs + 1):
            result = run_wrk(url, script, args.clients, args.threads, args.duration)
            results.append(result)
            print(
                f"run {run}: {result['rps']:.0f} requests/s  p50 {result['p50_ms']:.1f} ms  "
                f"p90 {result['p90_ms']:.1f} ms  p99 {result['p99_ms']:.1f} ms  "
                f"max {result['max_ms']:.1f} ms  errors {result['errors']}"
            )
        script.unlink()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        if temporary:
            shutil.rmtree(temporary, ignore_errors=True)
    medians = {key: statistics.median(r[key] for r in results) for key in results[0]}
    print(
        f"median: {medians['rps']:.0f} requests/s  p50 {medians['p50_ms']:.1f} ms  "
        f"p99 {medians['p99_ms']:.1f} ms  errors {sum(r['errors'] for r in results)} in total"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "settings": vars(args) | {"json": str(args.json), "data_dir": str(data_dir)},
                    "runs": results,
                    "median": medians,
                },
                indent=2,
                default=str,
            )
        )


if __name__ == "__main__":
    main()
