"""The floor: the shared harness's bare proxy plus only what issue 22 keeps on the relay path, hand-written.

What a gateway with a call log cannot skip, and nothing else: the bare ASGI + aiohttp proxy
(`../shared/bench/refs/asgi_aiohttp.py`), plus
- the request body parsed once (orjson) for its model and `stream` flag, as routing needs;
- a stream's first event looked into for content or an error (the failover rule), the final usage event
  decoded (orjson), the time to first token taken;
- a JSON answer's usage decoded (orjson of the body);
- one call record per request (32 values, ids and times included) queued for a writer thread that inserts them
  in batches into a SQLite table with Portico's `request_logs` columns and indexes, WAL, NORMAL sync;
- one access-log line per request (orjson, to stderr like Portico's, written in batches every 100 ms).

Written as cheaply as Portico's own hot path: ids from `random.getrandbits` (uuid4 reads the OS's random source,
a syscall each), access lines and rows batched, times formatted on the writer thread.

No validation, no retries, no failover, no cost, no metrics, no overhead header, no redaction: an upper bound
for any Python gateway that keeps the log the issue's bars were set with (`FLOOR_RECORD=0` leaves out the
record and the access line, to tell what they cost). It answers how close to the bare
proxy the bars can be at all. Run it as a custom target of the shared harness:

    cd ../shared/bench && ./run.sh ref-asgi-aiohttp portico --name floor \\
        --cmd "$PWD/../../main/.venv/bin/python $PWD/../../main/bench/floor_gateway.py --port {port}" \\
        --url "http://127.0.0.1:{port}/v1/chat/completions" --health "http://127.0.0.1:{port}/health"
"""

from __future__ import annotations

import argparse
import asyncio
import os
import queue
import random
import sqlite3
import sys
import threading
import time
from typing import Any

import aiohttp
import orjson
import uvicorn

UPSTREAM = os.environ.get("BENCH_UPSTREAM", "http://127.0.0.1:9100/v1").rstrip("/") + "/chat/completions"
UPSTREAM_HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer sk-upstream"}
CLIENT_KEYS = {b"Bearer sk-bench"}
DB = os.environ.get("FLOOR_DB", "/tmp/bench-floor/floor.db")
RECORD = os.environ.get("FLOOR_RECORD", "1") == "1"
"""`FLOOR_RECORD=0`: no call record and no access line, to tell what the log costs the floor."""
COLUMN_NAMES = (  # Portico's request_logs, bodies left out
    "id created_at request_id trace_id span_id parent_span_id path dialect client_key_hash provider model "
    "requested_model status error_type error_message stream partial cache_status prompt_tokens completion_tokens "
    "total_tokens cached_tokens reasoning_tokens cost_usd latency_ms overhead_ms ttft_ms attempts metadata "
    "identity_id thread_id retrievals"
)
COLUMNS = COLUMN_NAMES.split()
session: aiohttp.ClientSession | None = None  # noqa: TID251 - a stand-alone reference, not Portico
records: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
stderr = sys.stderr.buffer
access_lines: list[bytes] = []
tasks: set[asyncio.Task[None]] = set()


def writer() -> None:
    """Batches of up to 32 rows, one multi-row INSERT and one COMMIT each, every 100 ms (Portico's linger)."""
    os.makedirs(os.path.dirname(DB), exist_ok=True)
    db = sqlite3.connect(DB, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(f"CREATE TABLE IF NOT EXISTS request_logs ({', '.join(COLUMNS)}, PRIMARY KEY (id))")
    for column in ("created_at", "trace_id", "request_id"):
        db.execute(f"CREATE INDEX IF NOT EXISTS ix_{column} ON request_logs ({column})")
    marks = "(" + ", ".join("?" * len(COLUMNS)) + ")"
    while True:
        batch = [records.get()]
        time.sleep(0.1)  # noqa: TID251 - the writer thread's linger, off the loop
        while len(batch) < 2048:
            try:
                batch.append(records.get_nowait())
            except queue.Empty:
                break
        if None in batch:
            return
        batch = [(r[0], time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r[1])), *r[2:]) for r in batch]
        db.execute("BEGIN")
        for start in range(0, len(batch), 32):
            rows = batch[start : start + 32]
            db.execute(
                f"INSERT INTO request_logs VALUES {', '.join([marks] * len(rows))}", [v for r in rows for v in r]
            )
        db.execute("COMMIT")


def record(request_id: str, model: str, stream: bool, status: int, usage: dict[str, Any] | None,
           started: float, ttft: float | None) -> None:  # fmt: skip
    if not RECORD:
        return
    usage = usage or {}
    now = time.time()
    latency = (time.perf_counter() - started) * 1000
    prompt, completion = usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)
    records.put((
        new_id(), now, request_id, None, None, None,
        "/v1/chat/completions", "openai", None, "openai", model, model, status, None, None, stream, False, None,
        prompt, completion, prompt + completion, 0, 0, None, latency, 0.0, ttft, "[]", "{}", None, None, None,
    ))  # fmt: skip
    access_lines.append(orjson.dumps({"path": "/v1/chat/completions", "status": status, "latency_ms": latency,
                                      "request_id": request_id}))  # fmt: skip


def new_id() -> str:
    return random.getrandbits(128).to_bytes(16, "big").hex()


async def flush_access_lines() -> None:
    while True:
        await asyncio.sleep(0.1)
        if access_lines:
            lines = b"\n".join(access_lines) + b"\n"
            access_lines.clear()
            stderr.write(lines)


async def lifespan(receive: Any, send: Any) -> None:
    global session  # noqa: PLW0603 - the reference proxy's shape, kept
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            session = aiohttp.ClientSession(  # noqa: TID251
                connector=aiohttp.TCPConnector(limit=512, keepalive_timeout=300),
                timeout=aiohttp.ClientTimeout(total=600),
            )
            threading.Thread(target=writer, daemon=True).start()
            flusher = asyncio.get_running_loop().create_task(flush_access_lines())
            tasks.add(flusher)
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            records.put(None)
            await session.close()  # type: ignore[union-attr]
            await send({"type": "lifespan.shutdown.complete"})
            return


async def reply(send: Any, status: int, body: bytes, ctype: bytes = b"application/json") -> None:
    headers = [(b"content-type", ctype), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        return await lifespan(receive, send)
    if scope["path"] == "/health":
        return await reply(send, 200, b"ok", b"text/plain")
    if dict(scope["headers"]).get(b"authorization") not in CLIENT_KEYS:
        return await reply(send, 401, b'{"error":"invalid api key"}')
    started = time.perf_counter()
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    parsed = orjson.loads(body)
    model, stream = parsed["model"], bool(parsed.get("stream"))
    request_id = new_id()
    assert session is not None
    async with session.post(UPSTREAM, data=body, headers=UPSTREAM_HEADERS) as r:
        if not stream:
            answer = await r.read()
            await reply(send, r.status, answer)
            return record(request_id, model, False, r.status, orjson.loads(answer).get("usage"), started, None)
        await send({"type": "http.response.start", "status": r.status,
                    "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]})  # fmt: skip
        ttft, last = None, b""
        async for chunk in r.content.iter_any():
            if ttft is None:
                if b'"error"' in chunk:  # the failover rule's look: an error before content
                    break
                if b'"content"' in chunk:
                    ttft = (time.perf_counter() - started) * 1000
            last = chunk
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    usage = None
    at = last.rfind(b'"usage":{')
    if at >= 0:
        event = last[last.rfind(b"data: ", 0, at) + 6 : last.find(b"\n", at)]
        usage = orjson.loads(event).get("usage")
    record(request_id, model, True, r.status, usage, started, ttft)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8099)
    args = parser.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, loop="uvloop", http="httptools", access_log=False,
                log_level="warning", lifespan="on")  # fmt: skip


if __name__ == "__main__":
    main()
