"""CPU per stream chunk: Portico against the bare ASGI + aiohttp proxy, on the 20-chunk and the 500-chunk answer.

Each target is started once per body (its upstream base URL is fixed at start), loaded by wrk (the shared
harness's `chat.lua`, streaming) for `--seconds`, and its process's CPU time (user + system, from /proc) is divided
by the requests wrk completed. The cost of one chunk is the difference between the two bodies over the 480 chunks
between them, so what every request costs once (parsing, routing, the call log) cancels out:

    python bench/long_stream/gen_conf.py && nginx -p /tmp/portico-long-nginx/ -c $PWD/bench/long_stream/nginx.conf
    python bench/long_stream/per_chunk.py [--seconds 10] [--connections 16] [--cpu 1]

Issue 22's bar: Portico's cost per chunk at most twice the proxy's. The machine's other load moves CPU time less
than throughput, but run it on a quiet machine (or compare `instructions.py --long`, which is immune).
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
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from instructions import HARNESS, targets, wait_ready  # noqa: E402 - one definition of the targets

CHUNKS = {"stream/": 20, "long/": 500}
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system time of a process and its children so far (the uvicorn process serves in-process)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / CLK_TCK


def load(port: int, path: str, seconds: int, connections: int, wrk_cpu: str | None) -> int:
    """Requests wrk completed in `seconds` (non-2xx answers fail the run: a broken stream is not fast)."""
    env = dict(os.environ, BENCH_STREAM="1", BENCH_MODEL=os.environ.get("BENCH_MODEL", "openai/gpt-4o"))
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s"]
    command += ["-s", str(HARNESS / "chat.lua"), f"http://127.0.0.1:{port}{path}"]
    if wrk_cpu is not None:
        command = ["taskset", "-c", wrk_cpu, *command]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit(f"errors under load:\n{out}")
    return int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]


def measure(name: str, prefix: str, args: argparse.Namespace) -> float:
    """CPU µs per request of `name` serving the body under `prefix`."""
    command, path, model = targets(args.config)[name]
    env = dict(os.environ, BENCH_UPSTREAM=f"http://127.0.0.1:{args.upstream_port}/{prefix}v1")
    if args.cpu is not None:
        command = ["taskset", "-c", args.cpu, *command]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        asyncio.run(wait_ready(args.port))
        os.environ["BENCH_MODEL"] = model
        load(args.port, path, 2, args.connections, args.wrk_cpu)  # warm-up
        before = cpu_seconds(proc.pid)
        requests = load(args.port, path, args.seconds, args.connections, args.wrk_cpu)
        return (cpu_seconds(proc.pid) - before) / requests * 1e6
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", choices=["portico", "router", "ref", []], help="default: portico ref")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--upstream-port", type=int, default=9101)
    parser.add_argument("--cpu", help="pin the target to this CPU (taskset -c)")
    parser.add_argument("--wrk-cpu", help="pin wrk to this CPU")
    parser.add_argument("--config", type=Path, default=HARNESS / "configs" / "portico.yaml")
    args = parser.parse_args()
    args.port = int(os.environ.get("BENCH_PORT", "8095"))
    args.names = args.names or ["portico", "ref"]
    results: dict[str, dict[str, float]] = {}
    for name in args.names:
        per_request = {prefix: measure(name, prefix, args) for prefix in CHUNKS}
        chunk = (per_request["long/"] - per_request["stream/"]) / (CHUNKS["long/"] - CHUNKS["stream/"])
        results[name] = {"us_per_request_20": per_request["stream/"], "us_per_request_500": per_request["long/"]}
        results[name]["us_per_chunk"] = chunk
        print(f"{name:8} {per_request['stream/']:8.1f} µs/req (20 chunks) {per_request['long/']:8.1f} µs/req "
              f"(500 chunks)  {chunk:6.3f} µs/chunk", flush=True)  # fmt: skip
    if "ref" in results:
        for name, row in results.items():
            if name != "ref":
                print(f"{name}: {row['us_per_chunk'] / results['ref']['us_per_chunk']:.2f}x the proxy per chunk")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
