"""The one shared aiohttp session for every upstream call, its timeouts, and stream framings (SSE, event-stream).

Keep-alive pools per upstream and a DNS cache come from one `TCPConnector`. Nothing else in Portico may create a
client session (ruff TID251 enforces it): httpx measured ~15x more CPU per proxied request here.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
import orjson
from yarl import URL

from portico.core.errors import UpstreamConnectionError, UpstreamProtocolError, UpstreamTimeout

if TYPE_CHECKING:
    from portico.providers.base import CallOptions


@dataclass(slots=True)
class UpstreamEvent:
    """One framed event: an SSE `data` payload (with its `event:` name) or an event-stream message."""

    data: bytes
    event: str | None = None


class _Reader(Protocol):
    def feed(self, chunk: bytes) -> list[UpstreamEvent]: ...


class UpstreamStream:
    """An open upstream response; `events()` yields the events of each network read as one batch."""

    def __init__(
        self,
        response: aiohttp.ClientResponse,
        framing: str,
        options: CallOptions,
        provider: str,
        first_deadline: float | None,
    ) -> None:
        self._response = response
        self._framing = framing
        self._options = options
        self._provider = provider
        self._first_deadline = first_deadline
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers

    async def read(self) -> bytes:
        return await self._response.read()

    async def events(self) -> AsyncIterator[list[UpstreamEvent]]:
        """Until the first event, each read is bounded by the first-event deadline; after it, by the idle
        timeout, which aiohttp enforces itself (`sock_read`, set by `open_stream`): an `asyncio.timeout` per
        read was ~130 bytecodes and a timer for every chunk of a token-by-token stream."""
        reader: _Reader = _EventStreamReader() if self._framing == "aws-eventstream" else SSEReader()
        content = self._response.content
        first = self._first_deadline
        while True:
            try:
                if first is not None:
                    async with asyncio.timeout_at(first):
                        chunk = await content.readany()
                else:
                    chunk = await content.readany()
            except TimeoutError:  # aiohttp's read timeout is a TimeoutError too
                what = "the first token" if first is not None else "the next chunk"
                raise UpstreamTimeout(
                    f"{self._provider} did not send {what} in time", provider=self._provider
                ) from None
            except aiohttp.ClientError as exc:
                raise UpstreamConnectionError(
                    f"{self._provider} stream broke: {type(exc).__name__}", provider=self._provider
                ) from exc
            if not chunk:
                return
            try:
                events = reader.feed(chunk)
            except ValueError as exc:
                raise UpstreamProtocolError(
                    f"{self._provider} sent a malformed stream frame ({exc})", provider=self._provider
                ) from None
            if events:
                first = None
                yield events


class SSEReader:
    """Incremental Server-Sent Events parser (data-only and named events, CRLF or LF line ends)."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[UpstreamEvent]:
        buffer = self._buffer + chunk if self._buffer else chunk
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        *blocks, self._buffer = buffer.split(b"\n\n")
        out: list[UpstreamEvent] = []
        for block in blocks:
            if block.startswith(b"data: ") and b"\n" not in block:  # the common single-line event, inline
                out.append(UpstreamEvent(block[6:]))
            elif block:
                event = _parse_sse_block(block)
                if event is not None:
                    out.append(event)
        return out


def _parse_sse_block(block: bytes) -> UpstreamEvent | None:
    if block.startswith(b"data: ") and b"\n" not in block:
        return UpstreamEvent(block[6:])
    data: list[bytes] = []
    name: str | None = None
    for line in block.split(b"\n"):
        if not line or line.startswith(b":"):
            continue
        key, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if key == b"data":
            data.append(value)
        elif key == b"event":
            name = value.decode("utf-8", "replace")
    if not data and name is None:
        return None
    return UpstreamEvent(b"\n".join(data), name)


class _EventStreamReader:
    """AWS binary event-stream (Bedrock ConverseStream), decoded with botocore's parser (`portico[bedrock]`).

    Events are named `event:<:event-type>`, modelled exceptions `exception:<:exception-type>` (JSON payload), and
    protocol errors `error:<:error-code>` with `{"message": <:error-message>}` as payload (they carry none).
    A corrupt frame (CRC or length mismatch) raises `ValueError`.
    """

    def __init__(self) -> None:
        from botocore.eventstream import EventStreamBuffer, ParserError

        self._buffer: Any = EventStreamBuffer()
        self._parser_error: type[Exception] = ParserError

    def feed(self, chunk: bytes) -> list[UpstreamEvent]:
        self._buffer.add_data(chunk)
        out: list[UpstreamEvent] = []
        try:
            for message in self._buffer:
                headers = message.headers
                kind = headers.get(":message-type", "event")
                payload = message.payload
                if kind == "event":
                    name = headers.get(":event-type")
                elif kind == "error":
                    name = headers.get(":error-code", "error")
                    payload = payload or orjson.dumps({"message": headers.get(":error-message", "")})
                else:
                    name = headers.get(":exception-type", "exception")
                out.append(UpstreamEvent(payload, f"{kind}:{name}"))
        except self._parser_error as exc:
            raise ValueError(type(exc).__name__) from exc
        return out


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
    ) -> tuple[int, Mapping[str, str], bytes]:
        timeout = _timeout(options.timeout_s, options.connect_timeout_s)
        try:
            async with self.session.request(
                method, _verbatim(url), data=body, headers=headers, timeout=timeout
            ) as resp:
                return resp.status, resp.headers, await resp.read()
        except TimeoutError:
            raise UpstreamTimeout(
                f"{provider} did not answer within {options.timeout_s:g}s", provider=provider
            ) from None
        except aiohttp.ClientError as exc:
            raise UpstreamConnectionError(_describe(exc, provider), provider=provider) from exc

    @asynccontextmanager
    async def open_stream(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        options: CallOptions,
        provider: str,
        framing: str,
    ) -> AsyncIterator[UpstreamStream]:
        """Open a streaming call; leaving the block (normally, on error or on cancellation) releases it."""
        first = options.first_event_timeout_s
        timeout = _timeout(None, options.connect_timeout_s, read=options.timeout_s)  # streams: idle limit only
        first_deadline = None if first is None else asyncio.get_running_loop().time() + first
        try:
            async with asyncio.timeout(first if first is not None else options.timeout_s):
                resp = await self.session.request(method, _verbatim(url), data=body, headers=headers, timeout=timeout)
        except TimeoutError:
            raise UpstreamTimeout(f"{provider} did not start answering in time", provider=provider) from None
        except aiohttp.ClientError as exc:
            raise UpstreamConnectionError(_describe(exc, provider), provider=provider) from exc
        try:
            yield UpstreamStream(resp, framing, options, provider, first_deadline)
        except BaseException:
            resp.close()  # a broken or abandoned stream must not go back to the pool
            raise
        resp.release()


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
