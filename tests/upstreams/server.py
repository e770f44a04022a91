"""A mock upstream in a background thread: one aiohttp app on one port that each provider module adds routes to.

State is shared with the test: every request received (`requests`), scripted failures (`fail_with`) and
per-model behaviours (`set_mode`: slow, slow_first_chunk, cut_after, inband_error, invalid_json).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Failure:
    status: int
    message: str
    retry_after: float | None = None
    times: int | None = None  # None: until reset()
    model: str | None = None  # None: any model


@dataclass
class UpstreamState:
    requests: list[dict[str, Any]] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    modes: dict[str, tuple[str, float]] = field(default_factory=dict)
    default_modes: dict[str, tuple[str, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.modes = dict(self.default_modes)

    def fail_with(
        self,
        status: int,
        message: str = "upstream failure",
        retry_after: float | None = None,
        times: int | None = None,
        model: str | None = None,
    ) -> None:
        self.failures.append(Failure(status, message, retry_after, times, model))

    def set_mode(self, model: str, mode: str, arg: float = 0) -> None:
        self.modes[model] = (mode, arg)

    def reset(self) -> None:
        self.notes.clear()
        self.requests.clear()
        self.failures.clear()
        self.modes = dict(self.default_modes)

    def take_failure(self, model: str) -> Failure | None:
        for failure in self.failures:
            if failure.model not in (None, model):
                continue
            if failure.times is not None:
                failure.times -= 1
                if failure.times <= 0:
                    self.failures.remove(failure)
            return failure
        return None

    def mode(self, model: str) -> tuple[str, float]:
        return self.modes.get(model, ("ok", 0))

    async def simulate(
        self, model: str, error: Callable[[int, str], web.Response], request: web.Request | None = None
    ) -> web.StreamResponse | None:
        """The modes every mock plays the same way, before answering: `slow` waits, `invalid_json` answers
        garbage, `status` answers with `error(status, message)` in the provider's own error shape. None means
        answer normally (stream modes are each mock's own). With the request: `echo_key` answers 401 quoting
        the credential it was sent (as OpenAI does), and `huge_*` send `arg` MB (see `oversized`)."""
        mode, arg = self.mode(model)
        if request is not None and mode == "echo_key":
            return error(401, f"Incorrect API key provided: {credential_of(request)}. Find your key in the console.")
        if request is not None and mode.startswith("huge_"):
            return await oversized(request, mode, int(arg * 1024 * 1024))
        if mode == "slow":
            try:
                await asyncio.sleep(arg)
            except asyncio.CancelledError:
                self.notes.append("cancelled")  # the gateway hung up before the answer
                raise
        if mode == "invalid_json":
            return web.Response(text="<html>not json</html>", content_type="application/json")
        if mode.startswith("status"):
            return error(int(arg), f"model {model} failed")
        return None

    def record(self, request: web.Request, body: Any) -> None:
        self.requests.append(
            {
                "path": request.path,
                "query": dict(request.query),
                "headers": dict(request.headers),
                "body": body,
                "model": _model_of(request, body),
                "t": time.monotonic(),
            }
        )

    def models_seen(self) -> list[str]:
        return [r["model"] for r in self.requests]


def credential_of(request: web.Request) -> str:
    """The secret a request carried, whichever way its provider sends it."""
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        return auth[7:]
    for header in ("x-api-key", "api-key", "x-goog-api-key"):
        if header in request.headers:
            return request.headers[header]
    return request.query.get("key", auth)


async def oversized(request: web.Request, mode: str, size: int) -> web.StreamResponse:
    """`huge_json`: a 200 JSON body of `size` bytes (`huge_chunked`: without Content-Length); `huge_error`: a 500 whose non-JSON body is that large;
    `huge_json_error`: a 400 JSON error whose message is; `huge_event`: a 200 event stream whose first event
    never ends. Sent in 64 KiB writes, so the gateway may stop reading early."""
    piece = b"x" * 65536
    if mode == "huge_event":
        response = web.StreamResponse(status=200, headers={"content-type": "text/event-stream"})
        head, tail = b'data: {"id": "', b""
    elif mode in ("huge_json", "huge_chunked"):
        response = web.StreamResponse(status=200, headers={"content-type": "application/json"})
        head, tail = b'{"id": "', b'", "choices": []}'
    elif mode == "huge_json_error":
        response = web.StreamResponse(status=400, headers={"content-type": "application/json"})
        head, tail = b'{"error": {"message": "', b'"}}'
    else:
        response = web.StreamResponse(status=500, headers={"content-type": "text/html"})
        head, tail = b"<html>", b"</html>"
    if mode in ("huge_event", "huge_chunked"):
        response.enable_chunked_encoding()
    else:
        response.content_length = len(head) + size + len(tail)
    await response.prepare(request)
    await response.write(head)
    for start in range(0, size, len(piece)):
        await response.write(piece[: min(len(piece), size - start)])
    await response.write(tail)
    await response.write_eof()
    return response


def _model_of(request: web.Request, body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("model"), str):
        return str(body["model"])
    return request.match_info.get("model", "")


Installer = Callable[[web.Application, UpstreamState], None]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class UpstreamThread:
    """`with UpstreamThread([openai.install]) as up:` — `up.url` is the base URL, `up.state` the shared state."""

    def __init__(self, installers: list[Installer], state: UpstreamState | None = None) -> None:
        self.state = state or UpstreamState()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._installers = installers
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        for install in self._installers:
            install(app, self.state)
        # handler_cancellation: like a real server, notice when the gateway hangs up (tests assert it does)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5, handler_cancellation=True)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        self._loop.run_until_complete(site.start())
        self._ready.set()
        self._loop.run_forever()

    def __enter__(self) -> UpstreamThread:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("mock upstream did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            if self._runner is not None:
                await self._runner.cleanup()
            current = asyncio.current_task()
            pending = [task for task in asyncio.all_tasks() if task is not current]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():  # else a collected loop warns (ResourceWarning) in some later test
            self._loop.close()


async def read_json(request: web.Request) -> Any:
    raw = await request.read()
    try:
        import json

        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode(errors="replace")


def words_in(messages: Any) -> int:
    total = 0
    for message in messages or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            total += len(content.split())
        elif isinstance(content, list):
            total += sum(len(str(p.get("text", "")).split()) for p in content if isinstance(p, dict))
    return max(total, 1)


def last_user_text(messages: Any) -> str:
    for message in reversed(messages or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""
