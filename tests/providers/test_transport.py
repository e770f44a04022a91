"""The limits of one upstream call, against a real mock upstream over HTTP: answer and event size caps (refused
with a clear 502 without holding the rest) and the timeout model (first token, idle, whole call)."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from portico.config.schema import ProviderConfig
from portico.core.errors import UpstreamProtocolError, UpstreamTimeout
from portico.core.types import ChatChunk, ChatRequest
from portico.providers.base import CallOptions, HttpProvider, StreamStart
from portico.providers.registry import ProviderRegistry
from portico.providers.transport import Limits, Transport, UpstreamStream, stream_clock
from tests.conftest import KEY, http, stack_settings
from tests.gateway_server import GatewayThread
from tests.upstreams import openai as openai_upstream
from tests.upstreams.server import UpstreamThread

MB = 1024 * 1024


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamThread]:
    with UpstreamThread([openai_upstream.install]) as thread:
        yield thread


@pytest.fixture
async def transport() -> AsyncIterator[Transport]:
    t = Transport()
    await t.start()
    yield t
    await t.close()


def provider(upstream: UpstreamThread, **config: Any) -> HttpProvider:
    settings = ProviderConfig.model_validate(
        {"type": "openai", "api_key": "sk-t", "base_url": upstream.url + "/v1", **config}
    )
    built = ProviderRegistry.build({"capped": settings}).get("capped")
    assert isinstance(built, HttpProvider)
    return built


def request(model: str, stream: bool) -> ChatRequest:
    return ChatRequest(
        model=f"capped/{model}", body={"messages": [{"role": "user", "content": "a b c d"}]}, stream=stream
    )


async def drain(adapter: HttpProvider, model: str, transport: Transport, options: CallOptions) -> list[ChatChunk]:
    out: list[ChatChunk] = []
    async for batch in adapter.stream(request(model, True), model, transport, options, StreamStart()):
        out.extend(batch)
    return out


@pytest.mark.parametrize("mode", ["huge_json", "huge_chunked", "huge_error"])
async def test_an_answer_over_max_response_bytes_is_refused_unread(
    upstream: UpstreamThread, transport: Transport, mode: str
) -> None:
    adapter = provider(upstream, max_response_bytes=MB)
    upstream.state.set_mode(f"m-{mode}", mode, 8)
    tracemalloc.start()
    try:
        with pytest.raises(UpstreamProtocolError) as caught:
            await adapter.complete(request(f"m-{mode}", False), f"m-{mode}", transport, CallOptions(10))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert caught.value.message == f"capped answered more than {MB} bytes (max_response_bytes)"
    assert caught.value.http_status == 502 and caught.value.retryable
    assert peak < 3 * MB, peak  # 8 MB were offered; at most the cap (and a read) was held


async def test_a_stream_event_over_max_event_bytes_is_refused_while_it_grows(
    upstream: UpstreamThread, transport: Transport
) -> None:
    adapter = provider(upstream, max_event_bytes=MB)
    upstream.state.set_mode("m-event", "huge_event", 8)
    tracemalloc.start()
    try:
        with pytest.raises(UpstreamProtocolError) as caught:
            await drain(adapter, "m-event", transport, CallOptions(10))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert caught.value.message == f"capped sent a stream event larger than {MB} bytes (max_event_bytes)"
    assert caught.value.retryable
    assert peak < 4 * MB, peak


@pytest.mark.parametrize(
    ("mode", "arg"),
    [
        ("stall_after", 1),  # the role chunk, which carries no token, then silence
        ("keepalive_only", 0.01),  # comments every 10 ms: never idle, never content
    ],
)
async def test_the_first_token_deadline_holds_until_content_not_until_the_first_bytes(
    upstream: UpstreamThread, transport: Transport, mode: str, arg: float
) -> None:
    """Bytes that are not content do not satisfy the first-token bound, and it ends the wait before the (longer)
    idle one, whether a read waits for its bytes (a timer) or finds them already buffered (a look at the clock)."""
    adapter = provider(upstream)
    upstream.state.set_mode(f"m-{mode}", mode, arg)
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout, match=r"capped did not send the first token in time \(0.4s\)"):
        await drain(adapter, f"m-{mode}", transport, CallOptions(10, 5, first_event_timeout_s=0.4, idle_timeout_s=3))
    assert 0.35 < time.monotonic() - started < 2


async def test_the_idle_bound_ends_a_stream_gone_quiet(upstream: UpstreamThread, transport: Transport) -> None:
    adapter = provider(upstream, idle_timeout=0.4)
    upstream.state.set_mode("m-idle", "stall_after", 3)
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout, match=r"capped did not send the next chunk in time \(idle 0.4s\)"):
        await drain(adapter, "m-idle", transport, CallOptions(10))
    assert 0.35 < time.monotonic() - started < 2


async def test_the_whole_call_bound_ends_a_stream_that_keeps_dripping(
    upstream: UpstreamThread, transport: Transport
) -> None:
    adapter = provider(upstream)
    upstream.state.set_mode("m-drip", "drip", 0.1)  # a chunk every 0.1 s: never idle, never done in time
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout, match=r"capped did not finish in time \(timeout 0.5s\)"):
        await drain(adapter, "m-drip", transport, CallOptions(0.5, 5, idle_timeout_s=0.3))
    assert 0.45 < time.monotonic() - started < 1.5


async def test_a_stream_within_its_bounds_is_untouched(upstream: UpstreamThread, transport: Transport) -> None:
    adapter = provider(upstream, first_token_timeout=1, idle_timeout=1, max_event_bytes=1024)
    upstream.state.set_mode("m-ok", "drip", 0.05)
    chunks = await drain(adapter, "m-ok", transport, CallOptions(5))
    assert "".join(c.data["choices"][0]["delta"].get("content") or "" for c in chunks if c.data["choices"])


def test_call_options_for_an_attempt_follow_the_config_and_the_routing_timeout() -> None:
    config = ProviderConfig(timeout=100, connect_timeout=8, first_token_timeout=20, idle_timeout=30)
    assert CallOptions.for_attempt(config, None, True) == CallOptions(100, 8, 20, 30)
    assert CallOptions.for_attempt(config, 5, True) == CallOptions(100, 5, 5, 30)
    assert CallOptions.for_attempt(config, 50, False) == CallOptions(50, 8)


def test_the_gateway_answers_an_oversized_upstream_with_a_clear_502(upstream: UpstreamThread) -> None:
    settings = stack_settings(
        upstream.url,
        providers={
            "capped": {"type": "openai", "api_key": "sk-t", "base_url": upstream.url + "/v1", "max_response_bytes": MB}
        },
    )
    upstream.state.set_mode("gw-huge", "huge_json", 5)
    with GatewayThread(settings) as gateway:
        headers = {"content-type": "application/json", "authorization": f"Bearer {KEY}"}
        body = b'{"model": "capped/gw-huge", "messages": [{"role": "user", "content": "hi"}]}'
        answer = http("POST", gateway.url + "/v1/chat/completions", body, headers)
    assert answer.status == 502
    assert answer.json()["error"] == {
        "message": f"capped answered more than {MB} bytes (max_response_bytes)",
        "type": "upstream_error",
        "param": None,
        "code": "upstream_bad_response",
        "provider": "capped",
    }


class _AlwaysBuffered:
    """A response body whose next bytes are always already here: keep-alive comments, never an event. Read for
    more than two seconds, it fails the test (nothing else could: such a loop never gives the event loop a turn)."""

    def __init__(self) -> None:
        self.since = time.monotonic()

    def read_nowait(self, n: int = -1) -> bytes:
        assert time.monotonic() - self.since < 2, "read on past the first-token deadline"
        return b": keep-alive\n\n"

    async def readany(self) -> bytes:
        raise AssertionError("a read with bytes buffered must not wait")


async def test_a_read_that_finds_its_bytes_buffered_still_keeps_the_first_token_deadline() -> None:
    """The buffered-read path has no timer to fire: it compares the clock."""
    response: Any = type("Response", (), {"content": _AlwaysBuffered(), "status": 200, "headers": {}})()
    options = CallOptions(10, 5, first_event_timeout_s=0.2, idle_timeout_s=3)
    stream = UpstreamStream(response, "sse", "capped", stream_clock(options, Limits()), Limits())
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout, match=r"capped did not send the first token in time \(0.2s\)"):
        async for _ in stream.events():
            pass
    assert 0.15 < time.monotonic() - started < 1
