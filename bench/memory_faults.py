"""Memory under hostile upstreams (issue 16): the gateway's RSS while an upstream sends huge or unparsable answers.

A mock OpenAI upstream (aiohttp, started by this script as a subprocess on a free port) serves:

- ``/big/v1/chat/completions``: a valid-looking 50 MB ``chat.completion`` (with ``Content-Length``);
- ``/bigchunked/v1/chat/completions``: the same 50 MB, chunked (no ``Content-Length``: the cap must stop the read);
- ``/bad/v1/chat/completions``: 5 MB of invalid JSON with status 200;
- ``/bad500/v1/chat/completions``: the same 5 MB with status 500;
- ``/ok/v1/chat/completions``: a small ``chat.completion`` with usage.

One gateway worker (``portico serve --workers 1``, call log on SQLite in a temp dir, one ``openai``-type provider
per route: ``model: "big/gpt-4o"`` etc.) runs as a subprocess, and its RSS is read from ``/proc/<pid>/status``
(``VmRSS``; ``VmHWM`` for the peak, reset before each phase through ``/proc/<pid>/clear_refs``):

1. idle after 200 warm-up requests to ``ok``;
2. 10 concurrent requests to ``big``, then to ``bigchunked`` (peak and after);
3. 100 bad answers (status 200), then 100 more (status 500), 10 at a time, twice (``--bad-rounds``);
4. N normal requests to ``ok`` at concurrency 32 (``--requests``, default 60,000).

    .venv/bin/python bench/memory_faults.py [--requests 60000] [--concurrency 32]

Prints a table of RSS per phase and the statuses (and error codes) the gateway answered with.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

import aiohttp
from aiohttp import web

MB = 1_000_000
BIG_BYTES = 50 * MB
BAD_BYTES = 5 * MB
KEY = "sk-bench"


# ---------------------------------------------------------------- mock upstream (runs in its own process)


def _completion(content: str) -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": "gpt-4o",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
        }
    ).encode()


def mock_app() -> web.Application:
    """The hostile upstream; GET /hits answers how many requests each route received."""
    big = _completion("x" * (BIG_BYTES - len(_completion(""))))
    bad = b'{"id": "chatcmpl-bad", "object": "chat.completion", "choices": [{"message": {"content": "'
    bad += b"x" * (BAD_BYTES - len(bad))  # a string that never ends: invalid JSON
    ok = _completion("Hello! How can I help?")
    hits: collections.Counter[str] = collections.Counter()

    def answer(name: str, body: bytes, status: int = 200) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            await request.read()
            hits[name] += 1
            return web.Response(body=body, status=status, content_type="application/json")

        return handler

    async def chunked(request: web.Request) -> web.StreamResponse:
        await request.read()
        hits["bigchunked"] += 1
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        view = memoryview(big)
        try:
            for start in range(0, len(big), 256 * 1024):
                await resp.write(view[start : start + 256 * 1024])
            await resp.write_eof()
        except ConnectionError:
            pass  # the gateway gave up reading: that is the point
        return resp

    async def count(_: web.Request) -> web.Response:
        return web.json_response(dict(hits))

    app = web.Application(client_max_size=1024**2)
    app.router.add_post("/big/v1/chat/completions", answer("big", big))
    app.router.add_post("/bigchunked/v1/chat/completions", chunked)
    app.router.add_post("/bad/v1/chat/completions", answer("bad", bad))
    app.router.add_post("/bad500/v1/chat/completions", answer("bad500", bad, 500))
    app.router.add_post("/ok/v1/chat/completions", answer("ok", ok))
    app.router.add_get("/hits", count)
    return app


# ---------------------------------------------------------------- harness


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def proc_status(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of a process, in MiB."""
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    if len(out) != 2:
        raise SystemExit(f"process {pid} is gone")
    return out


def reset_peak(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False when the kernel refuses."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def write_config(workdir: Path, upstream: int) -> Path:
    providers = "".join(
        f'  {name}: {{type: openai, api_key: "sk-upstream", base_url: "http://127.0.0.1:{upstream}/{name}/v1"}}\n'
        for name in ("big", "bigchunked", "bad", "bad500", "ok")
    )
    text = (
        f'auth:\n  keys: ["{KEY}"]\nproviders:\n{providers}'
        f'storage:\n  url: "sqlite:///{workdir / "portico.db"}"\n'
        "logging:\n  access_log: false\n"
    )
    path = workdir / "portico.yaml"
    path.write_text(text)
    return path


async def wait_ready(
    session: aiohttp.ClientSession,  # noqa: TID251
    url: str,
    proc: subprocess.Popen[bytes],
) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url}: process exited with {proc.returncode}")
        try:
            async with session.get(url) as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)
    raise SystemExit(f"{url} not ready")


class Load:
    """Sends chat requests to the gateway and tallies what came back."""

    def __init__(self, session: aiohttp.ClientSession, port: int) -> None:  # noqa: TID251
        self.session = session
        self.url = f"http://127.0.0.1:{port}/v1/chat/completions"
        self.outcomes: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        self.largest_error_body: dict[str, int] = collections.defaultdict(int)
        self.seconds: dict[str, float] = collections.defaultdict(float)
        self.sample_error: dict[str, str] = {}

    async def one(self, provider: str, tag: str) -> None:
        payload = {"model": f"{provider}/gpt-4o", "messages": [{"role": "user", "content": "Say hello."}]}
        headers = {"Authorization": f"Bearer {KEY}"}
        try:
            async with self.session.post(self.url, json=payload, headers=headers) as resp:
                body = await resp.read()
                outcome = str(resp.status)
                if resp.status != 200:
                    self.largest_error_body[tag] = max(self.largest_error_body[tag], len(body))
                    self.sample_error.setdefault(tag, body[:300].decode(errors="replace"))
                    try:
                        error = json.loads(body).get("error", {})
                        outcome += f" {error.get('code') or error.get('type')}"
                    except (ValueError, AttributeError):
                        outcome += " (not JSON)"
        except (aiohttp.ClientError, TimeoutError) as exc:
            outcome = f"client error {type(exc).__name__}"
        self.outcomes[tag][outcome] += 1

    async def run(self, provider: str, tag: str, count: int, concurrency: int) -> None:
        started = time.monotonic()
        remaining = iter(range(count))

        async def worker() -> None:
            for _ in remaining:
                await self.one(provider, tag)

        await asyncio.gather(*(worker() for _ in range(min(concurrency, count))))
        self.seconds[tag] += time.monotonic() - started


async def sample_peak(pid: int, stop: asyncio.Event, into: list[float]) -> None:
    """Poll VmRSS every 20 ms (a cross-check of VmHWM)."""
    while not stop.is_set():
        into.append(proc_status(pid)["VmRSS"])
        await asyncio.sleep(0.02)


def start(workdir: Path) -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes], int, int]:
    """The mock upstream and one gateway worker: (mock, gateway, upstream port, gateway port)."""
    upstream_port, port = free_port(), free_port()
    mock = subprocess.Popen(
        [sys.executable, __file__, "--mock-upstream", str(upstream_port)], stdout=subprocess.DEVNULL
    )
    config = write_config(workdir, upstream_port)
    command = [str(Path(sys.executable).parent / "portico"), "serve", "--config", str(config)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    with (workdir / "gateway.log").open("wb") as log:
        env = dict(os.environ, PORTICO_HOME=str(workdir))
        gateway = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    return mock, gateway, upstream_port, port


async def bench(
    args: argparse.Namespace,
    mock: subprocess.Popen[bytes],
    gateway: subprocess.Popen[bytes],
    upstream_port: int,
    port: int,
) -> tuple[list[tuple[str, float, float, float | None]], Load, dict[str, int], bool]:
    rows: list[tuple[str, float, float, float | None]] = []  # phase, RSS, peak (VmHWM), polled max
    timeout = aiohttp.ClientTimeout(total=300)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:  # noqa: TID251 (the load client)
        await wait_ready(session, f"http://127.0.0.1:{upstream_port}/hits", mock)
        await wait_ready(session, f"http://127.0.0.1:{port}/health", gateway)
        load = Load(session, port)
        pid = gateway.pid
        rows.append(("started (no request yet)", *_mem(pid), None))
        peak_resets = reset_peak(pid)

        async def phase(name: str, provider: str, count: int, concurrency: int, settle: float = 2.0) -> None:
            reset_peak(pid)
            polled: list[float] = []
            stop = asyncio.Event()
            poller = asyncio.create_task(sample_peak(pid, stop, polled))
            await load.run(provider, name, count, concurrency)
            stop.set()
            await poller
            peak = proc_status(pid)["VmHWM"]
            await asyncio.sleep(settle)
            rows.append((name, proc_status(pid)["VmRSS"], peak, max(polled, default=0.0)))
            print(f"{name:<48} {rows[-1][1]:8.1f} MiB (peak {peak:.1f})", flush=True)

        await phase("200 warm-up requests (ok)", "ok", 200, 8)
        await phase("10 concurrent 50 MB answers (Content-Length)", "big", 10, 10)
        await phase("10 concurrent 50 MB answers (chunked)", "bigchunked", 10, 10)
        for n in range(1, args.bad_rounds + 1):
            await phase(f"100 bad 5 MB answers, status 200 (round {n})", "bad", 100, 10)
            await phase(f"100 bad 5 MB answers, status 500 (round {n})", "bad500", 100, 10)
        await phase(f"{args.requests:,} normal requests (ok)", "ok", args.requests, args.concurrency, settle=5.0)
        async with session.get(f"http://127.0.0.1:{upstream_port}/hits") as resp:
            hits = await resp.json()
    return rows, load, hits, peak_resets


def _mem(pid: int) -> tuple[float, float]:
    status = proc_status(pid)
    return status["VmRSS"], status["VmHWM"]


def report(
    rows: Iterable[tuple[str, float, float, float | None]],
    load: Load,
    hits: dict[str, int],
    peak_resets: bool,
    workdir: Path,
) -> None:
    print()
    print(f"VmHWM {'reset before each phase' if peak_resets else 'NOT resettable: peak since start'}")
    print("| phase | RSS after (MiB) | peak during (VmHWM, MiB) | max polled RSS (MiB) | seconds | statuses |")
    print("|---|---|---|---|---|---|")
    for name, rss, peak, polled in rows:
        statuses = ", ".join(f"{n} × {k}" for k, n in sorted(load.outcomes[name].items())) or "-"
        seconds = f"{load.seconds[name]:.1f}" if name in load.seconds else "-"
        polled_text = f"{polled:.1f}" if polled is not None else "-"
        print(f"| {name} | {rss:.1f} | {peak:.1f} | {polled_text} | {seconds} | {statuses} |")
    print()
    print(f"upstream hits: {json.dumps(hits, sort_keys=True)}")
    print(f"largest error body sent to the client, bytes: {json.dumps(dict(load.largest_error_body))}")
    for tag, text in load.sample_error.items():
        print(f"first error body, {tag}: {text}")
    print(f"gateway log: {workdir / 'gateway.log'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=60_000, help="normal requests after the faults")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrency of the normal requests")
    parser.add_argument("--bad-rounds", type=int, default=2, help="rounds of 100 + 100 bad answers")
    parser.add_argument("--mock-upstream", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mock_upstream:
        web.run_app(mock_app(), host="127.0.0.1", port=args.mock_upstream, print=None, access_log=None)
        return
    workdir = Path(tempfile.mkdtemp(prefix="portico-memfaults-"))
    mock, gateway, upstream_port, port = start(workdir)
    try:
        rows, load, hits, peak_resets = asyncio.run(bench(args, mock, gateway, upstream_port, port))
    finally:
        for proc in (gateway, mock):
            proc.send_signal(signal.SIGINT)
        for proc in (gateway, mock):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    report(rows, load, hits, peak_resets, workdir)


if __name__ == "__main__":
    main()
