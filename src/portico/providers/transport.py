"""The one shared aiohttp session for every upstream call, and the limits of one call: timeouts and sizes.

Keep-alive pools per upstream and a DNS cache come from one `TCPConnector`. Nothing else in Portico may create a
client session (ruff TID251 enforces it): httpx measured ~15x more CPU per proxied request here. An answer is read
with a running size total and refused past its cap without holding the rest.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

import aiohttp
from yarl import URL

from portico.core.errors import UpstreamConnectionError, UpstreamProtocolError, UpstreamTimeout
from portico.providers.framing import EventTooLarge, SSEReader, UpstreamEvent, _EventStreamReader

if TYPE_CHECKING:
    from portico.providers.base import CallOptions

__all__ = [  # the framings are re-exported: adapters and their tests know them from here
    "DEFAULT_LIMITS",
    "EventTooLarge",
    "Limits",
    "SSEReader",
    "Transport",
    "UpstreamEvent",
    "UpstreamStream",
    "_EventStreamReader",
    "read_capped",
]

DEFAULT_MAX_BYTES = 32 * 1024 * 1024
DEFAULT_IDLE_S = 60.0


@dataclass(frozen=True, slots=True)
class Limits:
    """A provider's own bounds on each call (from its config, built once); `CallOptions` fields override the
    timeouts per attempt."""

    first_token_s: float | None = None
    idle_s: float | None = None
    max_response_bytes: int = DEFAULT_MAX_BYTES
    max_event_bytes: int = DEFAULT_MAX_BYTES


DEFAULT_LIMITS = Limits()


class _Reader(Protocol):
    def feed(self, chunk: bytes) -> list[UpstreamEvent]: ...


@dataclass(frozen=True, slots=True)
class StreamClock:
    """The deadlines of one stream, on the event loop's clock."""

    first: float
    total: float
    tail: float  # from here on the idle timeout could outlast the total deadline: reads are bounded by it
    first_s: float
    idle_s: float
    total_s: float


class UpstreamStream:
    """An open upstream response; `events()` yields the events of each network read as one batch."""

    def __init__(
        self, response: aiohttp.ClientResponse, framing: str, provider: str, clock: StreamClock, limits: Limits
    ) -> None:
        self._response = response
        self._framing = framing
        self._provider = provider
        self._clock = clock
        self._limits = limits
        self._first_deadline: float | None = clock.first
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers

    async def read(self) -> bytes:
        """The whole body (an error answer), refused past `max_response_bytes`."""
        return await read_capped(self._response, self._limits.max_response_bytes, self._provider)

    def first_token(self) -> None:
        """The provider saw content: from now on reads are bounded by the idle timeout, not the first-token one."""
        self._first_deadline = None

    async def events(self) -> AsyncIterator[list[UpstreamEvent]]:
        """Until the first token, each read is bounded by the first-token deadline; after it, by the idle
        timeout, which aiohttp enforces itself (`sock_read`, set by `open_stream`), and by the total deadline,
        compared once per read: an `asyncio.timeout` per read was ~130 bytecodes and a timer for every chunk
        of a token-by-token stream. Only reads in the last idle period before the total deadline get a timer.
        A bounded read whose bytes are already buffered (the first read, when the answer came with its headers)
        compares the clock instead: a timer for a read that cannot wait cost ~25 k instructions per stream."""
        limit = self._limits.max_event_bytes
        framing = self._framing
        relay = framing == "sse-relay"  # an OpenAI-compatible stream sent on unread: blocks of whole events
        reader: _Reader = _EventStreamReader(limit) if framing == "aws-eventstream" else SSEReader(limit, relay=relay)
        content = self._response.content
        clock = self._clock
        now = asyncio.get_running_loop().time
        while True:
            until = self._first_deadline
            if until is None and now() >= clock.tail:
                until = clock.total
            try:
                if until is None:
                    chunk = await content.readany()
                elif chunk := content.read_nowait():  # bytes already here need a look at the clock, not a timer
                    if now() >= until:
                        raise TimeoutError
                else:
                    async with asyncio.timeout_at(until):
                        chunk = await content.readany()
            except TimeoutError:  # aiohttp's read timeout is a TimeoutError too
                raise self._timeout(until) from None
            except aiohttp.ClientError as exc:
                raise UpstreamConnectionError(
                    f"{self._provider} stream broke: {type(exc).__name__}", provider=self._provider
                ) from None
            if not chunk:
                return
            try:
                events = reader.feed(chunk)
            except EventTooLarge as exc:
                raise UpstreamProtocolError(
                    f"{self._provider} sent a stream event larger than {exc.limit} bytes (max_event_bytes)",
                    provider=self._provider,
                ) from None
            except ValueError as exc:
                raise UpstreamProtocolError(
                    f"{self._provider} sent a malformed stream frame ({exc})", provider=self._provider
                ) from None
            if events:
                yield events

    def _timeout(self, until: float | None) -> UpstreamTimeout:
        clock, name = self._clock, self._provider
        if until is not None and until == self._first_deadline and until < clock.total:
            return UpstreamTimeout(f"{name} did not send the first token in time ({clock.first_s:g}s)", provider=name)
        if until is not None:
            return UpstreamTimeout(f"{name} did not finish in time (timeout {clock.total_s:g}s)", provider=name)
        return UpstreamTimeout(f"{name} did not send the next chunk in time (idle {clock.idle_s:g}s)", provider=name)


async def read_capped(response: aiohttp.ClientResponse, cap: int, provider: str) -> bytes:
    """The body, refused past `cap` bytes: up front from Content-Length (aiohttp then reads no more than that),
    else by a running total over the reads, so a too large answer is never held whole."""
    declared = response.content_length
    if declared is not None:
        if declared > cap:
            response.close()
            raise _too_large(provider, cap)
        return await response.read()
    parts: list[bytes] = []
    total = 0
    content = response.content
    while chunk := await content.readany():
        total += len(chunk)
        if total > cap:
            response.close()
            raise _too_large(provider, cap)
        parts.append(chunk)
    return b"".join(parts)


def _too_large(provider: str, cap: int) -> UpstreamProtocolError:
    return UpstreamProtocolError(f"{provider} answered more than {cap} bytes (max_response_bytes)", provider=provider)


class Transport:
    """Owns the aiohttp session; started and closed by the application's lifespan."""

    def __init__(self, *, limit: int = 1024, dns_ttl: int = 300, keepalive_s: float = 60.0) -> None:
        self._limit = limit
        self._dns_ttl = dns_ttl
        self._keepalive_s = keepalive_s
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._limit, ttl_dns_cache=self._dns_ttl, keepalive_timeout=self._keepalive_s
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None),
                auto_decompress=True,
                # One session serves every client: a cookie an upstream set for one must never ride along on
                # another's request. No jar also means no cookie filtering on every call.
                cookie_jar=aiohttp.DummyCookieJar(),
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("Transport.start() was not called")
        return self._session

    async def send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        options: CallOptions,
        provider: str,
        limits: Limits = DEFAULT_LIMITS,
    ) -> tuple[int, Mapping[str, str], bytes]:
        timeout = _timeout(options.timeout_s, options.connect_timeout_s)
        try:
            async with self.session.request(
                method, _verbatim(url), data=body, headers=headers, timeout=timeout
            ) as resp:
                return resp.status, resp.headers, await read_capped(resp, limits.max_response_bytes, provider)
        except TimeoutError:
            raise UpstreamTimeout(
                f"{provider} did not answer within {options.timeout_s:g}s", provider=provider
            ) from None
        except aiohttp.ClientError as exc:
            raise UpstreamConnectionError(_describe(exc, provider), provider=provider) from exc

    def open_stream(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        options: CallOptions,
        provider: str,
        framing: str,
        limits: Limits = DEFAULT_LIMITS,
    ) -> AbstractAsyncContextManager[UpstreamStream]:
        """Open a streaming call; leaving the block (normally, on error or on cancellation) releases it. Opening
        (connect, then the response headers) is bounded by the first-token deadline."""
        return _OpenStream(self, (method, url, headers, body, options, provider, framing, limits))


class _OpenStream:
    """`Transport.open_stream`'s block. A class, not an `asynccontextmanager`: that is one async generator more per
    stream (its frames, the event loop's first-iteration hook and finaliser, contextlib's wrapper). With the last
    batch's one-write end (`http/sse.py`) it took a 20-chunk stream from 1,061 k to 1,041 k instructions."""

    __slots__ = ("_call", "_response", "_transport")

    def __init__(
        self,
        transport: Transport,
        call: tuple[str, str, Mapping[str, str], bytes, CallOptions, str, str, Limits],
    ) -> None:
        self._transport = transport
        self._call = call
        self._response: aiohttp.ClientResponse | None = None

    async def __aenter__(self) -> UpstreamStream:
        method, url, headers, body, options, provider, framing, limits = self._call
        session = self._transport.session
        clock = stream_clock(options, limits)
        timeout = _timeout(None, options.connect_timeout_s, read=clock.idle_s)
        try:
            async with asyncio.timeout_at(clock.first):
                resp = await session.request(method, _verbatim(url), data=body, headers=headers, timeout=timeout)
        except TimeoutError:
            raise UpstreamTimeout(
                f"{provider} did not start answering in time ({clock.first_s:g}s)", provider=provider
            ) from None
        except aiohttp.ClientError as exc:
            raise UpstreamConnectionError(_describe(exc, provider), provider=provider) from exc
        self._response = resp
        return UpstreamStream(resp, framing, provider, clock, limits)

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        response = self._response
        if response is None:
            return
        if kind is None:
            response.release()
        else:
            response.close()  # a broken or abandoned stream must not go back to the pool


def stream_clock(options: CallOptions, limits: Limits) -> StreamClock:
    """One stream's deadlines: an attempt's `CallOptions` win over the provider's own limits; the first token
    and the idle gaps never outlast the whole call."""
    total_s = options.timeout_s
    first_s = options.first_event_timeout_s or limits.first_token_s or total_s
    idle_s = min(options.idle_timeout_s or limits.idle_s or DEFAULT_IDLE_S, total_s)
    start = asyncio.get_running_loop().time()
    total = start + total_s
    return StreamClock(min(start + first_s, total), total, total - idle_s, min(first_s, total_s), idle_s, total_s)


@functools.lru_cache(maxsize=256)
def _timeout(total: float | None, connect: float | None, read: float | None = None) -> aiohttp.ClientTimeout:
    """`ClientTimeout` is an attrs class that is slow to build; calls share a handful of distinct values. `read`
    bounds each wait for data (a stream's idle time between chunks)."""
    return aiohttp.ClientTimeout(total=total, sock_connect=connect, sock_read=read)


def _verbatim(url: str) -> str | URL:
    """Send a URL its adapter percent-encoded byte for byte: yarl would turn `%3A` back into `:`, and SigV4 (Bedrock
    model ids such as `...-v2%3A0`) signs the exact path. URLs without escapes keep yarl's normal handling."""
    return URL(url, encoded=True) if "%" in url else url


def _describe(exc: aiohttp.ClientError, provider: str) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect to {provider} ({exc.host}:{exc.port})"
    return f"connection to {provider} failed: {type(exc).__name__}"
