"""Chunk batches → `text/event-stream`: `data: {chunk}` frames flushed as they arrive, `data: [DONE]` at the end.

A failure after the headers are out cannot change the status, so it becomes one explicit `data: {"error": ...}`
frame (OpenAI's error shape, which the SDKs raise on) followed by `[DONE]` (CHECKLIST ERR-05).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import orjson

from portico.core.errors import PorticoError
from portico.core.types import ChatChunk, Dialect, LastBatch
from portico.http.asgi import Headers, Send
from portico.http.errors import error_payload, internal_error

if TYPE_CHECKING:
    from portico.http.routes.chat import Exchange

log = logging.getLogger("portico.http")

DONE = b"data: [DONE]\n\n"
SSE_HEADERS: Headers = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


def encode_batch(batch: list[ChatChunk]) -> bytes:
    """A list comprehension, not a generator: it runs for every batch of a stream, and resuming a generator per
    chunk cost twice the bytecodes. A relayed chunk's frame is its `raw`, never empty."""
    return b"".join([chunk.raw or _frame(chunk) for chunk in batch])


def _frame(chunk: ChatChunk) -> bytes:
    return b"data: " + orjson.dumps(chunk.data) + b"\n\n"


async def write_stream(
    send: Send, chunks: AsyncIterator[list[ChatChunk]], headers: Headers, ex: Exchange, dialect: Dialect
) -> None:
    """Once the headers are out, every failure (upstream, encoding, a cache or hook bug below the iterator) ends
    the body with an error event and `[DONE]`: nothing escapes to the server, which would log a protocol error
    and cut the connection without telling the client why."""
    await send({"type": "http.response.start", "status": 200, "headers": [*SSE_HEADERS, *headers]})
    last: bytes | None = None
    try:
        async for batch in chunks:
            if type(batch) is LastBatch:  # the upstream ended in this read: its frames and our end in one write
                last = encode_batch(batch) + DONE
                break
            await send({"type": "http.response.body", "body": encode_batch(batch), "more_body": True})
    except PorticoError as error:
        await _end_with_error(send, ex, error, dialect)
        return
    except Exception:
        log.exception("stream of request %s failed after its headers were sent", ex.request_id)
        await _close(chunks)
        await _end_with_error(send, ex, internal_error(ex.request_id), dialect)
        return
    await send({"type": "http.response.body", "body": last or DONE, "more_body": False})
    if last is not None:
        await _finish(chunks, ex)


async def _finish(chunks: AsyncIterator[list[ChatChunk]], ex: Exchange) -> None:
    """Run a stream whose end was sent to its own end (the upstream's connection goes back to the pool). Nothing
    can follow an upstream's `[DONE]`; whatever does is logged, never sent (the response is complete)."""
    try:
        async for batch in chunks:
            if batch:
                log.warning("stream of request %s: %d chunks after [DONE] were dropped", ex.request_id, len(batch))
    except Exception:
        log.exception("stream of request %s failed after its end was sent", ex.request_id)


async def _end_with_error(send: Send, ex: Exchange, error: PorticoError, dialect: Dialect) -> None:
    ex.error = error
    try:
        frame = b"data: " + orjson.dumps(error_payload(error, dialect)) + b"\n\n"
    except (TypeError, ValueError):  # an unencodable detail must not cost the client its end of stream
        log.exception("could not encode the stream error of request %s", ex.request_id)
        frame = b"data: " + orjson.dumps(error_payload(internal_error(ex.request_id), dialect)) + b"\n\n"
    await send({"type": "http.response.body", "body": frame + DONE, "more_body": False})


async def _close(chunks: AsyncIterator[list[ChatChunk]]) -> None:
    """An encoding failure leaves the iterator suspended: close it now so the upstream connection is released."""
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        try:
            await aclose()
        except Exception:
            log.exception("closing a failed stream raised")
