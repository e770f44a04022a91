"""Raw ASGI primitives for the chat hot path: header map, bounded body read, JSON replies, disconnect watch.

No framework sits on the chat path: FastAPI's request machinery measured ~350–480 µs per request here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from itertools import chain
from typing import Any, Protocol

from portico.core.errors import PayloadTooLarge

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def header_map(scope: Scope) -> dict[str, str]:
    """Lower-case names → latin-1 values (ASGI guarantees lower-case names; repeated headers: last wins), for
    the requests that need more than a few of them as text (Portkey's); the chat path reads the raw pairs.

    Decoded in one piece, not pair by pair (a third of the bytecode of a dict comprehension): no header name or
    value can hold a line feed (the HTTP parser refuses one), so it is a safe separator."""
    parts = b"\n".join(chain.from_iterable(scope["headers"])).decode("latin-1").split("\n")
    return dict(zip(parts[::2], parts[1::2], strict=True)) if len(parts) > 1 else {}


class ClientDisconnected(Exception):
    """The client went away before its request body was complete: nothing is answered, the call is recorded as
    cancelled (never as a malformed body)."""


async def read_body(receive: Receive, headers: Mapping[bytes, bytes], limit: int) -> bytes:
    declared = headers.get(b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(limit)
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body"):
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        if len(body) > limit:
            raise PayloadTooLarge(limit)
        return body
    parts = [body]
    size = len(body)
    while message.get("more_body"):
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(limit)
        parts.append(chunk)
    return b"".join(parts)


async def send_bytes(send: Send, status: int, body: bytes, headers: Headers, content_type: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def send_json(send: Send, status: int, body: bytes, headers: Headers) -> None:
    await send_bytes(send, status, body, headers, b"application/json")


class Watched(Protocol):
    """An exchange as the disconnect watch sees it: `finished` is set once the response is out."""

    finished: float
    disconnected: bool


class DisconnectWatches:
    """Cancels a serving task when its client goes away, so an abandoned request stops its upstream call.

    `watch()` costs a request one list append: a sweeper task, one per endpoint, starts a watcher task only for
    the exchanges still running one to two sweeps later. Most answers are out before that; a watcher task per
    request cost ~12 k instructions. A client that left earlier is still noticed, since `receive()` answers
    `http.disconnect` at once for a connection already gone. A watcher is never cancelled: ASGI answers
    `receive()` with `http.disconnect` once the response has been sent, so it wakes, sees the exchange is over
    and ends by itself (cancelling it left a reference cycle behind every request for the collector).
    Started on first use in the serving loop, stopped by `close()`.
    """

    def __init__(self, every: float = 0.05) -> None:
        self.every = every
        self._young: dict[int, tuple[Watched, Receive, asyncio.Task[Any] | None]] = {}
        self._old: dict[int, tuple[Watched, Receive, asyncio.Task[Any] | None]] = {}
        self._watchers: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    def watch(self, exchange: Watched, receive: Receive) -> None:
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())
        self._young[id(exchange)] = (exchange, receive, asyncio.current_task())

    def done(self, exchange: Watched) -> None:
        """The exchange is over: forget it at once, so nothing it holds outlives it."""
        key = id(exchange)
        if self._young.pop(key, None) is None:
            self._old.pop(key, None)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            for exchange, receive, task in self._old.values():
                if not exchange.finished and task is not None:
                    watcher = asyncio.get_running_loop().create_task(_watch(exchange, receive, task))
                    self._watchers.add(watcher)  # the loop keeps only weak references to tasks
                    watcher.add_done_callback(self._watchers.discard)
            self._old, self._young = self._young, {}

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None


async def _watch(exchange: Watched, receive: Receive, task: asyncio.Task[Any]) -> None:
    while not exchange.finished:
        message = await receive()
        if message["type"] == "http.disconnect":
            if not exchange.finished:
                exchange.disconnected = True
                task.cancel()
            return
