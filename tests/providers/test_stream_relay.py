"""The relaying SSE reader and the OpenAI parser's blocks, fed the bytes of a stream cut at every point: what leaves
is the upstream's bytes, the events the gateway must read are read, and nothing odd is taken for a block."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from portico.core.errors import UpstreamProtocolError
from portico.core.types import ChatChunk
from portico.providers.framing import RELAYED, SSEReader
from portico.providers.openai_compatible import OpenAIStreamParser
from portico.providers.openai_relay import RelayBlock


def event(content: str | None = None, finish: str | None = None, usage: Any = ..., **extra: Any) -> bytes:
    delta = {"content": content} if content is not None else {}
    data: dict[str, Any] = {"id": "c", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
    if usage is not ...:
        data["usage"] = usage
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


ROLE = b'data: {"id":"c","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}\n\n'
USAGE = b'data: {"id":"c","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8}}\n\n'
DONE = b"data: [DONE]\n\n"


def play(pieces: list[bytes]) -> tuple[list[ChatChunk], OpenAIStreamParser]:
    reader, parser = SSEReader(relay=True), OpenAIStreamParser("up")
    out: list[ChatChunk] = []
    for piece in pieces:
        for upstream_event in reader.feed(piece):
            out.extend(parser.feed(upstream_event))
    out.extend(parser.close())
    return out, parser


def cut(body: bytes, seed: int, parts: int) -> list[bytes]:
    points = sorted(random.Random(seed).sample(range(1, len(body)), parts))
    return [body[a:b] for a, b in zip([0, *points], [*points, len(body)], strict=True)]


@pytest.mark.parametrize("null_usage", [False, True])
@pytest.mark.parametrize("seed", range(12))
def test_any_cut_relays_the_upstream_bytes_and_reads_the_usage(seed: int, null_usage: bool) -> None:
    u: Any = None if null_usage else ...
    events = [ROLE, *(event(f"w{i} ", usage=u) for i in range(30)), event(finish="stop", usage=u), USAGE]
    body = b"".join(events) + DONE
    chunks, _ = play(cut(body, seed, 1 + seed % 7))
    assert b"".join(c.raw or b"" for c in chunks) == b"".join(events)
    assert [c.usage for c in chunks if c.usage] == [{"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}]
    blocks = [c for c in chunks if isinstance(c, RelayBlock)]
    assert blocks, "content after the first was relayed as blocks"
    if null_usage:  # what a client that did not ask for usage is sent
        assert all(b'"usage"' not in (b.without_usage().raw or b"") for b in blocks)


def test_nothing_is_a_block_before_the_first_content() -> None:
    """Until content flows the stream may still fail over: every event before it is decoded and looked at."""
    chunks, _ = play([ROLE + ROLE + event("Hi") + event(" there") + event(" you") + DONE])
    assert [type(c) for c in chunks] == [ChatChunk, ChatChunk, ChatChunk, RelayBlock]
    assert chunks[2].has_content and chunks[3].raw == event(" there") + event(" you")


def test_an_error_in_a_block_raises_with_its_message() -> None:
    error = b'data: {"error":{"message":"overloaded"}}\n\n'
    reader, parser = SSEReader(relay=True), OpenAIStreamParser("up")
    (first,) = reader.feed(ROLE + event("Hi"))
    parser.feed(first)
    (block,) = reader.feed(event(" more") + error)
    assert block.event is RELAYED
    with pytest.raises(UpstreamProtocolError, match="overloaded"):
        parser.feed(block)


def test_a_usage_written_otherwise_is_still_cut_for_a_client_that_did_not_ask() -> None:
    spaced = b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"x"}}],"usage": null}\n\n'
    chunks, _ = play([ROLE + event("a") + event("b", usage=None) + spaced + event("c") + USAGE + DONE])
    kinds = [type(c).__name__ for c in chunks]
    assert kinds == ["ChatChunk", "ChatChunk", "RelayBlock", "ChatChunk"]
    stripped = chunks[2].without_usage().raw
    expected = event("b") + b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"x"}}]}\n\n' + event("c")
    assert stripped == expected
    assert chunks[3].usage == {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}


@pytest.mark.parametrize(
    "odd",
    [
        b": keep-alive\n\n",
        b"event: message\n" + event("z"),
        b"data: [1]\n\n",
        b'data: "ping"\n\n',
        b"\n",
    ],
)
def test_odd_events_before_content_are_read_one_by_one_and_after_it_relayed(odd: bytes) -> None:
    """Before the first content every event is read as the event-by-event path reads it (a comment, a list or a
    bare string is dropped); after it, a block's framing is trusted and passes as received."""
    chunks, _ = play([ROLE + odd + event("a") + event("b") + USAGE + DONE])
    assert not isinstance(chunks[0], RelayBlock) and chunks[0].raw == ROLE
    assert b"".join(c.raw or b"" for c in chunks[1:]).endswith(event("a") + event("b") + USAGE)
    if odd.startswith(b"event:"):
        assert chunks[1].raw == event("z")  # the name is dropped, the data read as a chunk
    chunks, _ = play([ROLE + event("a") + odd + event("b") + USAGE + DONE])
    assert b"".join(c.raw or b"" for c in chunks) == ROLE + event("a") + odd + event("b") + USAGE


def test_a_first_read_that_is_not_data_is_read_one_by_one() -> None:
    body = b": processing\n\n" + ROLE + event("a") + event("b") + USAGE + DONE
    assert all(e.event is not RELAYED for e in SSEReader(relay=True).feed(body))
    chunks, _ = play([body])
    assert b"".join(c.raw or b"" for c in chunks) == ROLE + event("a") + event("b") + USAGE


def test_the_word_error_in_an_answer_is_not_an_error() -> None:
    chunks, _ = play([ROLE + event("a") + event("an error occurred") + event('"error"') + USAGE + DONE])
    assert (
        b"".join(c.raw or b"" for c in chunks)
        == ROLE + event("a") + event("an error occurred") + event('"error"') + USAGE
    )


def test_a_stream_without_done_is_cut_and_a_crlf_stream_is_normalised() -> None:
    with pytest.raises(UpstreamProtocolError, match="before it finished"):
        play([ROLE + event("a") + event("b")])
    body = ROLE + event("a") + event("b") + USAGE
    chunks, _ = play([(body + DONE).replace(b"\n", b"\r\n")])
    assert b"".join(c.raw or b"" for c in chunks) == body


def test_a_block_is_bytes_only() -> None:
    block = RelayBlock(event("a"))
    assert block.has_content and block.has_choices and block.usage is None and not block.is_error
    with pytest.raises(TypeError):
        _ = block.data
