"""Stream framing does not depend on where the network cuts: every provider's recorded and mock streams, split
at every byte offset into two reads and fed one byte at a time, give the events of the unsplit parse; framing
stays linear in the bytes read; an event over `max_event_bytes` is refused while it grows."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from portico.providers.transport import EventTooLarge, SSEReader, UpstreamEvent, _EventStreamReader
from tests.upstreams import anthropic, bedrock, cohere, gemini, openai
from tests.upstreams.server import UpstreamThread

FIXTURES = Path(__file__).parent.parent / "fixtures"
Reader = Callable[[], SSEReader | _EventStreamReader]


def parse(reader: SSEReader | _EventStreamReader, reads: list[bytes]) -> list[tuple[bytes, str | None]]:
    events: list[UpstreamEvent] = []
    for chunk in reads:
        events.extend(reader.feed(chunk))
    return [(e.data, e.event) for e in events]


def mock_streams() -> dict[str, bytes]:
    """The raw bodies the mock upstreams stream, read once over HTTP."""
    hi = [{"role": "user", "content": "hello there streaming world"}]
    calls: dict[str, tuple[str, dict[str, str], dict[str, object]]] = {
        "openai": (
            "/v1/chat/completions",
            {},
            {"model": "gpt-4o", "stream": True, "messages": hi, "stream_options": {"include_usage": True}},
        ),
        "anthropic": (
            "/v1/messages",
            {"x-api-key": anthropic.API_KEY, "anthropic-version": "2023-06-01"},
            {"model": "claude-3-5-haiku", "max_tokens": 64, "stream": True, "messages": hi},
        ),
        "cohere": (
            "/v2/chat",
            {"authorization": "Bearer co-key"},
            {"model": "command-r", "stream": True, "messages": hi},
        ),
        "gemini": (
            "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
            {"x-goog-api-key": "g-key"},
            {"contents": [{"role": "user", "parts": [{"text": "hello there streaming world"}]}]},
        ),
        "bedrock.bin": (
            "/model/anthropic.claude-3-haiku/converse-stream",
            {"authorization": f"Bearer {bedrock.API_KEY}"},
            {"messages": [{"role": "user", "content": [{"text": "hello there streaming world"}]}]},
        ),
    }
    out: dict[str, bytes] = {}
    with UpstreamThread([openai.install, anthropic.install, cohere.install, gemini.install, bedrock.install]) as up:
        for name, (path, headers, body) in calls.items():
            sent = {"content-type": "application/json", **headers}
            request = urllib.request.Request(up.url + path, json.dumps(body).encode(), sent, method="POST")
            with urllib.request.urlopen(request, timeout=10) as answer:
                out[name] = answer.read()
    return out


def streams() -> Iterator[tuple[str, bytes, Reader]]:
    for path in sorted(FIXTURES.glob("*/*.sse")):
        raw = path.read_bytes().replace(b"\r\n", b"\n")
        name = f"{path.parent.name}/{path.name}"
        yield name, raw, SSEReader
        yield name + "+crlf", raw.replace(b"\n", b"\r\n"), SSEReader
        yield name + "+cr", raw.replace(b"\n", b"\r"), SSEReader
    for path in sorted(FIXTURES.glob("bedrock/*.bin")):
        yield f"bedrock/{path.name}", path.read_bytes(), _EventStreamReader
    for name, raw in mock_streams().items():
        if name.endswith(".bin"):
            yield "mock-" + name, raw, _EventStreamReader
        else:
            yield "mock-" + name, raw, SSEReader
            yield "mock-" + name + "+crlf", raw.replace(b"\n", b"\r\n"), SSEReader


STREAMS = list(streams())


@pytest.mark.parametrize(("name", "raw", "reader"), STREAMS, ids=[s[0] for s in STREAMS])
def test_events_do_not_depend_on_where_reads_are_cut(name: str, raw: bytes, reader: Reader) -> None:
    whole = parse(reader(), [raw])
    assert len(whole) >= 2, name
    if "+cr" in name:  # other line ends, same events
        assert whole == parse(reader(), [raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")])
    for cut in range(1, len(raw)):
        assert parse(reader(), [raw[:cut], raw[cut:]]) == whole, f"{name} cut at {cut}"
    assert parse(reader(), [raw[i : i + 1] for i in range(len(raw))]) == whole


def test_a_crlf_cut_between_two_reads_is_one_line_end() -> None:
    reader = SSEReader()
    assert reader.feed(b"event: ping\r") == []
    assert reader.feed(b"\ndata: {}\r\n\r") == [UpstreamEvent(b"{}", "ping")]
    assert reader.feed(b"\ndata: 2\r\n\r\n") == [UpstreamEvent(b"2")]


def test_a_large_unterminated_event_is_read_in_linear_time() -> None:
    """20 MB in 4 KiB reads: rescanning the buffer at every read took minutes; linear work takes well under 2 s."""
    reader = SSEReader()
    piece = b"x" * 4096
    started = time.perf_counter()
    assert reader.feed(b"data: ") == []
    for _ in range(5000):
        assert reader.feed(piece) == []
    events = reader.feed(b"\r\n\r\n")
    elapsed = time.perf_counter() - started
    assert len(events) == 1 and len(events[0].data) == 5000 * 4096
    assert elapsed < 2.0, elapsed


def test_an_event_over_the_cap_is_refused_while_it_grows() -> None:
    reader = SSEReader(max_event_bytes=10_000)
    assert reader.feed(b"data: " + b"x" * 5000) == []
    with pytest.raises(EventTooLarge, match="10000 bytes"):
        reader.feed(b"x" * 5000)
    ok = SSEReader(max_event_bytes=10_000)  # many events in one read are fine: only one event is capped
    assert len(ok.feed(b"data: 1234567890\n\n" * 2000)) == 2000


def test_an_aws_message_over_the_cap_is_refused_from_its_prelude() -> None:
    raw = (FIXTURES / "bedrock" / "converse_stream_tool_use.bin").read_bytes()
    size = int.from_bytes(raw[:4], "big")
    assert len(_EventStreamReader(max_event_bytes=size).feed(raw[:size])) == 1
    with pytest.raises(EventTooLarge):
        _EventStreamReader(max_event_bytes=size - 1).feed(raw[:12])
    with pytest.raises(ValueError, match="InvalidMessageLength"):  # a corrupt length is not waited for
        _EventStreamReader().feed((2**31).to_bytes(4, "big") + raw[4:64])
