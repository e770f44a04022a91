"""Instructions per proxied request, counted by callgrind: a repeatable measure of a gateway's own CPU cost.

Wall-clock throughput on this machine moves by up to 2x over a day; an instruction count does not, so it tells
whether one change to the hot path helped. It is a proxy only: kernel time (sockets) and cache misses are not
counted, which is why `run.sh` (the shared harness, side by side) stays the benchmark of record.

Needs the shared harness's nginx mock on 127.0.0.1:9100 (`./run.sh ... --keep-nginx` leaves it running) and
valgrind. Each target runs under callgrind with collection off; after warm-up, collection is switched on for
`--requests` requests sent by 16 concurrent keep-alive clients, then off again:
    python bench/instructions.py portico ref [--requests 2000] [--stream]
    python bench/instructions.py router deployment    # a stored deployment against the same call on /v2/router
    python bench/instructions.py portico --idle 10    # also net of the background work (see below)
    python bench/instructions.py ref floor portico    # with bench/floor_gateway.py, the hand-written floor

The gateway's timers (state sync polls, sweeps, flushes) run whatever the load: ~2.3 M instructions per second of
wall time under valgrind, all counted in the window. On a quiet 2-core machine 2,000 requests took 22-25 s, so
that is ~30 k per request; on a loaded one valgrind runs several times slower and the same code reads 100-200 k
more per request. `--idle S` first counts S seconds of an idle gateway, then reports each
target's count net of that rate times its window's length, beside the raw count: compare net counts across runs.
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

import aiohttp

HERE = Path(__file__).resolve().parent
HARNESS = Path(os.environ.get("BENCH_HARNESS", HERE.parent.parent / "shared" / "bench"))
PORT = int(os.environ.get("BENCH_PORT", "8095"))
UPSTREAM = "http://127.0.0.1:9100/%sv1"
"""The mock's base URL, `%s` the body's prefix; `--upstream-port 9101 --long` uses bench/long_stream's mock."""
BODY = (
    '{"model":"%s","messages":[{"role":"system","content":"You are a helpful assistant. Answer concisely and '
    'accurately."},{"role":"user","content":"Hello! How are you today? Please reply in one short sentence."}],'
    '"max_tokens":256,"temperature":0.7%s}'
)


def targets(config: Path) -> dict[str, tuple[list[str], str, str]]:
    """name → (command, path, model)."""
    venv_bin = Path(sys.executable).parent
    portico = [
        str(venv_bin / "portico"), "serve", "--config", str(config),
        "--host", "127.0.0.1", "--port", str(PORT),
    ]  # fmt: skip
    ref = [
        "/tmp/anchors/refs/bin/uvicorn", "--app-dir", str(HARNESS / "refs"), "asgi_aiohttp:app",
        "--host", "127.0.0.1", "--port", str(PORT), "--loop", "uvloop", "--http", "httptools",
        "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    floor = [sys.executable, str(HERE / "floor_gateway.py"), "--port", str(PORT)]
    return {
        "portico": (portico, "/v1/chat/completions", "openai/gpt-4o"),
        "floor": (floor, "/v1/chat/completions", "gpt-4o"),
        "router": (portico, "/v2/router/chat/completions", "openai/gpt-4o"),
        "deployment": (portico, "/v2/deployments/invoke", "openai/gpt-4o"),
        "ref": (ref, "/v1/chat/completions", "gpt-4o"),
    }


async def create_deployment(port: int, model: str) -> None:
    """The deployment `bench`: the same messages and parameters as BODY, stored, so that invoking it by key
    sends the upstream what a router call with BODY sends."""
    body = {
        "key": "bench",
        "model": model,
        "prompt": {"messages": json.loads(BODY % (model, ""))["messages"]},
        "parameters": {"max_tokens": 256, "temperature": 0.7},
    }
    headers = {"Authorization": "Bearer sk-bench"}
    async with aiohttp.ClientSession() as session:  # noqa: TID251 (the load client)
        base = f"http://127.0.0.1:{port}/v1/admin/deployments"
        async with session.post(base, json=body, headers=headers) as resp:
            if resp.status == 409:
                update_body = {k: v for k, v in body.items() if k != "key"}  # the key is in the path
                async with session.put(f"{base}/bench", json=update_body, headers=headers) as update:
                    update.raise_for_status()
            else:
                resp.raise_for_status()


async def drive(url: str, body: bytes, requests: int, concurrency: int, stream: bool) -> None:
    headers = {"Authorization": "Bearer sk-bench", "Content-Type": "application/json"}
    remaining = requests

    async def client(session: aiohttp.ClientSession) -> None:  # noqa: TID251
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            async with session.post(url, data=body, headers=headers) as resp:
                data = await resp.read()
                if resp.status != 200 or (stream and not data.rstrip().endswith(b"[DONE]")):
                    raise SystemExit(f"bad answer {resp.status}: {data[:200]!r}")

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:  # noqa: TID251 (the load client)
        await asyncio.gather(*(client(session) for _ in range(concurrency)))


async def wait_ready(port: int, within_s: float = 300.0) -> None:
    deadline = time.monotonic() + within_s
    async with aiohttp.ClientSession() as session:  # noqa: TID251 (the load client)
        while time.monotonic() < deadline:
            try:
                async with session.get(f"http://127.0.0.1:{port}/health") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.5)
    raise SystemExit("gateway not ready")


def live_total(pid: int) -> int:
    """Instructions counted so far in every thread of a process under callgrind (read while it runs)."""
    out = subprocess.run(["callgrind_control", "-e", str(pid)], check=True, capture_output=True, text=True).stdout
    return sum(int(count.replace(",", "")) for count in re.findall(r"^\s*Th\s+\d+\s+([\d,]+)", out, re.M))


def measure(
    name: str,
    requests: int,
    stream: bool | str,
    workdir: Path,
    config: Path,
    upstream: str = UPSTREAM,
    idle: float = 0.0,
) -> float:
    """Instructions per request; with `idle` seconds, net of the background rate counted while idle first."""
    command, path, model = targets(config)[name]
    out = workdir / f"callgrind.{name}.out"
    env = dict(os.environ, BENCH_UPSTREAM=upstream % ("stream/" if stream is True else stream or ""))
    proc = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}", *command],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{PORT}{path}"
        body = (BODY % (model, ',"stream":true,"stream_options":{"include_usage":true}' if stream else "")).encode()
        asyncio.run(wait_ready(PORT))
        if name == "deployment":
            asyncio.run(create_deployment(PORT, model))
            body = b'{"key":"bench","stream":true}' if stream else b'{"key":"bench"}'
        asyncio.run(drive(url, body, 300, 16, stream))  # warm-up: caches, pools, lazy imports
        subprocess.run(["callgrind_control", "-i", "on", str(proc.pid)], check=True, capture_output=True)
        if idle:
            before = live_total(proc.pid)
            asyncio.run(asyncio.sleep(idle))  # the gateway idles under collection
            idle_count = live_total(proc.pid) - before
        started = time.monotonic()
        asyncio.run(drive(url, body, requests, 16, stream))
        window = time.monotonic() - started
        subprocess.run(["callgrind_control", "-i", "off", str(proc.pid)], check=True, capture_output=True)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
    totals = [int(m) for m in re.findall(rb"^totals: (\d+)", out.read_bytes(), re.M)]
    if not idle:
        return sum(totals) / requests
    raw = (sum(totals) - idle_count) / requests
    background = idle_count / idle * window / requests
    print(
        f"{name:8} raw {raw / 1000:8.1f} k/request, window {window:.1f} s, background "
        f"{idle_count / idle / 1e6:.2f} M/s = {background / 1000:.1f} k/request",
        file=sys.stderr,
    )
    return raw - background


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="+", choices=["portico", "router", "deployment", "ref", "floor"])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument(
        "--long", action="store_true", help="the 500-chunk stream of bench/long_stream (implies --stream)"
    )
    parser.add_argument("--upstream-port", type=int, default=9100, help="9101: bench/long_stream's mock")
    parser.add_argument("--config", type=Path, default=HARNESS / "configs" / "portico.yaml")
    parser.add_argument("--keep", help="directory to keep the callgrind files in (for callgrind_annotate)")
    parser.add_argument("--idle", type=float, default=0.0, help="seconds of idle counting: report net counts")
    args = parser.parse_args()
    workdir = Path(args.keep or tempfile.mkdtemp(prefix="portico-callgrind-"))
    workdir.mkdir(parents=True, exist_ok=True)
    stream: bool | str = "long/" if args.long else args.stream
    upstream = UPSTREAM.replace("9100", str(args.upstream_port))
    results = {
        name: measure(name, args.requests, stream, workdir, args.config, upstream, args.idle) for name in args.names
    }
    for name, per_request in results.items():
        line = f"{name:8} {per_request / 1000:8.1f} k instructions/request"
        if "ref" in results and name != "ref":
            line += f"  ({per_request / results['ref']:.2f}x ref)"
        print(line)
    if args.keep:
        print(f"callgrind files in {workdir}")


if __name__ == "__main__":
    main()
