"""Stream framings: Server-Sent Events and AWS event-stream, parsed incrementally from network reads.

Both readers are linear in the bytes read, whatever the cuts between reads, and refuse an event larger than
their `max_event_bytes` while it grows (never holding more than that of one event).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(slots=True)
class UpstreamEvent:
    """One framed event: an SSE `data` payload (with its `event:` name) or an event-stream message."""

    data: bytes
    event: str | None = None


RELAYED = "\x00portico-relayed-block"
"""The `event` of an `UpstreamEvent` from a relaying `SSEReader` whose `data` is whole events, not one payload:
the complete events of one read (it starts with `data: {`, ends with a blank line), exactly as received, to be
sent on as they are. Compared by identity: no upstream event name is this object.

The reader does not look inside a block: every pass over a block's bytes (a search, a count) costs about what
the bare proxy spends relaying them, so its framing is trusted. A comment (`: keep-alive`) in it reaches the
client, which ignores it as the event-by-event path's dropping did; an `event:` name or a multi-line `data` would
reach the client as sent, where the event-by-event path sent the data alone (OpenAI-compatible servers use
neither). `event_at` reads one event of a block the way the event-by-event path does."""


class EventTooLarge(ValueError):
    """One stream event grew past the provider's `max_event_bytes` before it ended."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"an event exceeded {limit} bytes")
        self.limit = limit


class SSEReader:
    """Incremental Server-Sent Events parser (data-only and named events, CRLF, CR or LF line ends).

    Linear in the bytes read: line ends are normalised per read (a CRLF cut between two reads is remembered, not
    doubled), and the reads of an unfinished event are kept apart and searched for its end only in the new bytes
    (plus the one byte before them), then joined once.
    """

    __slots__ = ("_cr", "_limit", "_parts", "_pending", "_relay")

    def __init__(self, max_event_bytes: int | None = None, *, relay: bool = False) -> None:
        self._parts: list[bytes] = []  # the reads of an unfinished event
        self._pending = 0
        self._cr = False  # the last read ended with CR: a LF starting the next one belongs to it
        self._limit = max_event_bytes
        self._relay = relay
        """Hand the whole events of a read on as one `RELAYED` block (the OpenAI-compatible stream): the relay
        then sends their bytes without splitting them."""

    def feed(self, chunk: bytes) -> list[UpstreamEvent]:
        if self._cr or b"\r" in chunk:
            if self._cr and chunk[:1] == b"\n":
                chunk = chunk[1:]
            self._cr = chunk[-1:] == b"\r"
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        parts = self._parts
        if parts:
            if b"\n\n" not in chunk and not (chunk[:1] == b"\n" and parts[-1][-1:] == b"\n"):
                if chunk:
                    parts.append(chunk)
                    self._grow(len(chunk))
                return []
            parts.append(chunk)
            data = b"".join(parts)
            parts.clear()
        else:
            data = chunk
        if self._relay:
            return self._relayed(data)
        *blocks, tail = data.split(b"\n\n")
        if tail:
            parts.append(tail)
            self._pending = size = len(tail)
            if self._limit is not None and size > self._limit:
                raise EventTooLarge(self._limit)
        return _events(blocks)

    def _relayed(self, data: bytes) -> list[UpstreamEvent]:
        """The whole events of `data` as one `RELAYED` block (the rest kept for the next read). No pass over the
        block's bytes here: see `RELAYED` for what that trusts."""
        cut = data.rfind(b"\n\n") + 2
        if cut == 1:  # no event ended in this read
            tail, whole = data, b""
        elif cut == len(data):
            tail, whole = b"", data
        else:
            tail, whole = data[cut:], data[:cut]
        if tail:
            self._parts.append(tail)
            self._pending = size = len(tail)
            if self._limit is not None and size > self._limit:
                raise EventTooLarge(self._limit)
        if not whole:
            return []
        if whole.startswith(b"data: {"):  # a final `[DONE]` stays in: cutting it off would copy the block
            return [UpstreamEvent(whole, RELAYED)]
        return _events(whole.split(b"\n\n"))  # a comment or a named event first: event by event

    def _grow(self, size: int) -> None:
        self._pending += size
        if self._limit is not None and self._pending > self._limit:
            raise EventTooLarge(self._limit)


def _events(blocks: list[bytes]) -> list[UpstreamEvent]:
    out: list[UpstreamEvent] = []
    for block in blocks:
        if block.startswith(b"data: ") and b"\n" not in block:  # the common single-line event, inline
            out.append(UpstreamEvent(block[6:]))
        elif block:
            event = _parse_sse_block(block)
            if event is not None:
                out.append(event)
    return out


def event_at(block: bytes) -> UpstreamEvent | None:
    """One event (its bytes without the blank line that ended it) as the event-by-event path reads it."""
    if block.startswith(b"data: ") and b"\n" not in block:
        return UpstreamEvent(block[6:])
    return _parse_sse_block(block) if block else None


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


# botocore's own bounds on one message: prelude and CRCs, 128 KiB of headers, 24 MiB of payload.
_ES_MIN_MESSAGE = 16
_ES_MAX_MESSAGE = 16 + 128 * 1024 + 24 * 1024 * 1024


class _EventStreamReader:
    """AWS binary event-stream (Bedrock ConverseStream), decoded with botocore's parser (`portico[bedrock]`).

    Events are named `event:<:event-type>`, modelled exceptions `exception:<:exception-type>` (JSON payload), and
    protocol errors `error:<:error-code>` with `{"message": <:error-message>}` as payload (they carry none).
    A corrupt frame (CRC or length mismatch) raises `ValueError`. Only whole messages reach botocore's buffer,
    which copies all it holds on every add: fed read by read, a large message cost quadratic time.
    """

    def __init__(self, max_event_bytes: int | None = None) -> None:
        from botocore.eventstream import EventStreamBuffer, ParserError

        self._buffer: Any = EventStreamBuffer()
        self._parser_error: type[Exception] = ParserError
        self._pending = bytearray()
        self._limit = max_event_bytes

    def feed(self, chunk: bytes) -> list[UpstreamEvent]:
        pending = self._pending
        pending += chunk
        whole = self._whole_messages()
        if not whole:
            return []
        self._buffer.add_data(bytes(pending[:whole]))
        del pending[:whole]
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
            raise ValueError(type(exc).__name__) from None
        return out

    def _whole_messages(self) -> int:
        """How many leading bytes of the pending data are whole messages (each starts with its total length)."""
        pending, end, size = self._pending, 0, len(self._pending)
        while size - end >= 4:
            total = int.from_bytes(pending[end : end + 4], "big")
            if not _ES_MIN_MESSAGE <= total <= _ES_MAX_MESSAGE:
                raise ValueError("InvalidMessageLength")
            if self._limit is not None and total > self._limit:  # refused from its prelude, not once it arrived
                raise EventTooLarge(self._limit)
            if size - end < total:
                break
            end += total
        return end
