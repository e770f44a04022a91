"""Soak: a million requests through one Portico worker, its RSS sampled; after warm-up it must stay flat (±5 MB).

Not part of `make test` (it runs for an hour at the harness's rates). The gateway runs the benchmark's default
configuration (`../shared/bench/configs/portico.yaml`: auth, the call log on SQLite, the memory cache, every stage
present and unasked) plus one more provider whose base URL is the mock's streaming body, so that rounds alternate
JSON answers and streams. wrk (the harness's `chat.lua`) sends the load in rounds; after each round the worker's
RSS is read from /proc:

    python bench/long_stream/gen_conf.py && nginx -p /tmp/portico-long-nginx/ -c $PWD/bench/long_stream/nginx.conf
    python bench/soak.py --requests 1000000 [--warmup 50000] [--round-seconds 10] [--connections 16]

Prints one line per round (requests so far, RSS) and a verdict: the largest distance of any sample after warm-up
from the first sample after it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from instructions import HARNESS, wait_ready  # noqa: E402

LIMIT_MB = 5.0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise SystemExit(f"process {pid} is gone")


def config(upstream_port: int, workdir: Path) -> Path:
    """The benchmark's configuration, plus `streamed`: the same mock, answering every request with its stream."""
    text = (HARNESS / "configs" / "portico.yaml").read_text()
    extra = f'  streamed: {{type: openai, api_key: "sk-upstream", base_url: "http://127.0.0.1:{upstream_port}/stream/v1"}}\n'
    text = text.replace("providers:\n", "providers:\n" + extra, 1)
    text = text.replace("/tmp/bench-portico/portico.db", str(workdir / "portico.db"))
    path = workdir / "portico.yaml"
    path.write_text(text)
    return path


def round_of(port: int, stream: bool, seconds: int, connections: int) -> int:
    env = dict(os.environ, BENCH_MODEL="streamed/gpt-4o" if stream else "openai/gpt-4o")
    env["BENCH_STREAM"] = "1" if stream else "0"
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s"]
    command += ["-s", str(HARNESS / "chat.lua"), f"http://127.0.0.1:{port}/v1/chat/completions"]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit(f"errors under load:\n{out}")
    return int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--warmup", type=int, default=50_000)
    parser.add_argument("--round-seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--upstream-port", type=int, default=9101)
    parser.add_argument("--port", type=int, default=int(os.environ.get("BENCH_PORT", "8099")))
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="portico-soak-"))
    venv_bin = Path(sys.executable).parent
    command = [str(venv_bin / "portico"), "serve", "--config", str(config(args.upstream_port, workdir))]
    command += ["--host", "127.0.0.1", "--port", str(args.port)]
    env = dict(os.environ, BENCH_UPSTREAM=f"http://127.0.0.1:{args.upstream_port}/v1")
    log = (workdir / "gateway.log").open("w")
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    samples: list[tuple[int, float]] = []
    started = time.monotonic()
    try:
        asyncio.run(wait_ready(args.port))
        done, stream = 0, False
        while done < args.requests:
            done += round_of(args.port, stream, args.round_seconds, args.connections)
            stream = not stream
            samples.append((done, rss_mb(proc.pid)))
            print(f"{done:>9} requests  {samples[-1][1]:7.1f} MiB  ({time.monotonic() - started:6.0f} s)", flush=True)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    after = [rss for n, rss in samples if n >= args.warmup]
    if len(after) < 2:
        raise SystemExit("too few samples after warm-up: raise --requests or lower --warmup")
    drift = max(abs(rss - after[0]) for rss in after)
    verdict = {
        "requests": samples[-1][0],
        "warmup": args.warmup,
        "rss_after_warmup_mib": round(after[0], 1),
        "rss_last_mib": round(after[-1], 1),
        "rss_max_mib": round(max(after), 1),
        "drift_mib": round(drift, 1),
        "flat": drift <= LIMIT_MB,
    }
    print(json.dumps(verdict))
    if not verdict["flat"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
