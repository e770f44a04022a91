"""The relay of an OpenAI-compatible stream: once content flows, the upstream's events go on as their own bytes.

A client speaking OpenAI's chunk format to an upstream that speaks it too needs nothing rewritten, so the events of
one network read travel as one `RelayBlock` (their bytes, as received) instead of one decoded `ChatChunk` per
event. What the gateway must still see is found with byte searches, and only the events that carry it are decoded:

- before the first content, every event is read in full (a stream may still fail over until then);
- after it, an in-band error (`"error"` anywhere in the block) or a usage with a value in the block's last event
  (the final chunk's) ends the block: from that event on the read is handled event by event as before (the
  error raises, the usage is accounted and shaped); a final `[DONE]` is noted and left out (no copy);
- `"usage":null` on every chunk (OpenAI's way once `include_usage` is asked) stays in the block, and the relay
  strips it by a byte substitution when the client did not ask for usage (as the decoded path did).

What a block gives up: its events are not validated as JSON (the client's parser meets the upstream's bytes as
they are, where the decoded path ended the stream with an error), and its framing is trusted (`framing.RELAYED`).
A usage with a value anywhere but in the last event of a read (no OpenAI-compatible server sends one there) would
pass unaccounted.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson

from portico.core.types import ChatChunk, JSONObject
from portico.providers.framing import UpstreamEvent, event_at

_NULL_USAGE = b',"usage":null'
DONE = b"data: [DONE]\n\n"


class RelayBlock(ChatChunk):
    """Whole events after the first content, relayed as received: `raw` is their bytes.

    Not a chunk to look into: nothing downstream of a relaying stream decodes chunks (the gateway asks for blocks
    only when the stream goes straight to the client, see `HttpProvider.stream`), so `data` refuses loudly."""

    __slots__ = ()
    is_error = False  # shadows ChatChunk's slot: a block never holds an error event (it ends before one)

    def __init__(self, raw: bytes, strip_usage: bool = False) -> None:  # no ChatChunk init: nothing to decode
        self.raw = raw
        self.has_usage_key = strip_usage
        """The client did not ask for usage: the relay looks for `"usage":null` keys (OpenAI's on every chunk
        once usage is asked) to cut them out (`without_usage`). False: the block passes untouched."""

    @property
    def data(self) -> JSONObject:
        raise TypeError("a relayed block is bytes only: decode its events with the event-by-event path")

    @property
    def has_choices(self) -> bool:
        return True

    @property
    def usage(self) -> JSONObject | None:
        return None

    @property
    def has_content(self) -> bool:
        return True

    def without_usage(self) -> RelayBlock:
        """The block as the event-by-event path sent it to a client that did not ask for usage: no `usage` key.
        A `usage` with a value never stays in a block (it is the last event's, read on its own)."""
        raw = self.raw
        assert raw is not None
        if b"usage" not in raw:
            return self
        raw = raw.replace(_NULL_USAGE, b"")
        if b'"usage"' in raw:  # written otherwise (`"usage": null`): decoded and re-encoded, as before
            raw = b"".join([_without_usage(event) for event in raw.split(b"\n\n") if event])
        return RelayBlock(raw)

    def __repr__(self) -> str:
        return f"RelayBlock({self.raw!r})"


def plain_block(block: bytes, strip_usage: bool = False) -> RelayBlock | None:
    """Once content flows, the whole block as one `RelayBlock` when nothing in it needs reading: no `error`, no
    `[DONE]` at its end, no usage value in its last event. The common read (a token or a few), at a third of
    `split_block`'s bytecodes; None: `split_block` it."""
    if block.find(b"error") >= 0 or block.endswith(DONE):
        return None
    usage = block.find(b'"usage"', block.rfind(b"\n\n", 0, len(block) - 2) + 1)
    if usage >= 0 and not (block.startswith(_NULL_USAGE, usage - 1) and block.find(b'"usage"', usage + 7) < 0):
        return None
    chunk = _new_block(RelayBlock)  # no __init__ frame: two slots to set
    chunk.raw = block
    chunk.has_usage_key = strip_usage
    return chunk


def split_block(
    block: bytes,
    flowing: bool,
    feed: Callable[[UpstreamEvent], list[ChatChunk]],
    strip_usage: bool = False,
    end: int | None = None,
) -> tuple[list[ChatChunk], bool]:
    """The chunks of the whole events in `block[:end]` (framing.RELAYED) and whether content now flows.

    `feed` is the parser's event-by-event path (it raises on an in-band error). `strip_usage`: the client did not
    ask for usage, so the relay is to cut `"usage":null` keys out of the blocks. After the first content, a
    block costs one pass over its bytes (the search for `error`), a look at its last event (for the usage) and
    one copy (its slice; a read of 140 kB copied three times cost as much as the bare proxy's whole relay)."""
    end = len(block) if end is None else end
    out: list[ChatChunk] = []
    pos = 0
    if not flowing:  # the failover rule needs each event read until the first content
        while pos < end:
            stop = block.index(b"\n\n", pos)
            event = event_at(block[pos:stop])
            pos = stop + 2
            if event is not None:
                for chunk in feed(event):
                    out.append(chunk)
                    flowing = flowing or chunk.has_content
                if flowing:
                    break
        if pos >= end:
            return out, flowing
    cut = block.find(b"error", pos, end)
    if cut >= 0:
        cut = _error_at(block, cut, end)
    last = block.rfind(b"\n\n", pos, end - 2)  # the blank line before the last event (none: it is the only one)
    last = pos if last < 0 else last + 2
    if (cut < 0 or cut > last) and block.find(b'"usage"', last, end) >= 0 and not _null_usage_only(block[last:end]):
        cut = last  # the final usage chunk: accounted and shaped as before
    if cut < 0:
        out.append(RelayBlock(block if pos == 0 and end == len(block) else block[pos:end], strip_usage))
        return out, flowing
    start = block.rfind(b"\n\n", pos, cut)  # the start of the event the cut falls in
    start = pos if start < 0 else start + 2
    if start > pos:
        out.append(RelayBlock(block[pos:start], strip_usage))
    for raw in block[start:end].split(b"\n\n"):
        if (event := event_at(raw)) is not None:
            out.extend(feed(event))
    return out, flowing


_new_block = RelayBlock.__new__


def _error_at(block: bytes, at: int, end: int) -> int:
    """Where the first `"error"` of the block is, from the first `error` at `at` on (-1: none). The five-letter
    needle is searched by CPython's quicker algorithm (needles of six bytes or more switch to two-way, four times
    the instructions per byte); the word in an answer's text costs a look at its neighbours."""
    while at > 0:
        if block[at - 1 : at] == b'"' and block[at + 5 : at + 6] == b'"':
            return at - 1
        at = block.find(b"error", at + 5, end)
    return -1


def _without_usage(event: bytes) -> bytes:
    """One event of a block with its `usage` key dropped (and dropped whole if it had no choices)."""
    if b'"usage"' not in event or not event.startswith(b"data: {"):
        return event + b"\n\n"
    data = orjson.loads(event[6:])
    if not isinstance(data, dict) or "usage" not in data:
        return event + b"\n\n"
    del data["usage"]
    return b"data: " + orjson.dumps(data) + b"\n\n" if data.get("choices") else b""


def _null_usage_only(event: bytes) -> bool:
    return event.count(b'"usage"') == event.count(_NULL_USAGE)
