"""A failure at each stage of a stream, as the client's bytes show it: after the headers are out, every failure
ends the body with one `data: {"error": ...}` event and `data: [DONE]`, and the gateway keeps serving."""

from __future__ import annotations

import http.client
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from portico.core.errors import UpstreamConnectionError
from portico.core.types import ChatChunk
from portico.http.routes.chat import Exchange
from portico.http.sse import write_stream
from tests.conftest import KEY, stack_settings
from tests.gateway_server import GatewayThread
from tests.upstreams import anthropic as anthropic_upstream
from tests.upstreams import openai as openai_upstream
from tests.upstreams.server import UpstreamThread


class Faults:
    def __init__(self, gateway: GatewayThread, upstream: UpstreamThread) -> None:
        self.gateway, self.upstream = gateway, upstream

    def stream(
        self, model: str, path: str = "/v1/chat/completions", request_id: str | None = None, **extra: Any
    ) -> tuple[int, bytes]:
        """The status and the whole raw body (chunked transfer decoded), read until the server ends it."""
        body = {"model": model, "stream": True, "messages": [{"role": "user", "content": uuid.uuid4().hex}], **extra}
        conn = http.client.HTTPConnection("127.0.0.1", self.gateway.port, timeout=10)
        try:
            headers = {"content-type": "application/json", "authorization": f"Bearer {KEY}"}
            if request_id is not None:
                headers["x-request-id"] = request_id
            conn.request("POST", path, json.dumps(body).encode(), headers)
            answer = conn.getresponse()
            return answer.status, answer.read()  # raises IncompleteRead if the body is not ended cleanly
        finally:
            conn.close()


class ServerErrors(logging.Handler):
    """What uvicorn logs as an application error (its loggers do not reach pytest's caplog)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def faults() -> Iterator[Faults]:
    with UpstreamThread([openai_upstream.install, anthropic_upstream.install]) as upstream:
        settings = stack_settings(
            upstream.url,
            providers={
                "openai": {"api_key": "sk-upstream", "base_url": f"{upstream.url}/v1"},
                "anthropic": {"api_key": anthropic_upstream.API_KEY, "base_url": upstream.url},
            },
            logging={"request_log": True},
        )
        with GatewayThread(settings) as gateway:
            yield Faults(gateway, upstream)


@pytest.fixture
def server_errors(faults: Faults) -> Iterator[ServerErrors]:
    faults.upstream.state.reset()
    handler = ServerErrors()
    logger = logging.getLogger("uvicorn.error")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    faults.upstream.state.reset()


def frames(body: bytes) -> list[bytes]:
    """The SSE frames of a body, each checked to be a complete `data:` frame."""
    assert body.endswith(b"\n\n"), body[-200:]
    parts = body[:-2].split(b"\n\n")
    for part in parts:
        assert part.startswith(b"data: "), part
    return [part[6:] for part in parts]


def error_tail(body: bytes) -> dict[str, Any]:
    """The body ends with exactly one error event then `[DONE]`; the error event's JSON."""
    got = frames(body)
    assert got[-1] == b"[DONE]"
    assert got.count(b"[DONE]") == 1
    error = json.loads(got[-2])
    assert set(error) <= {"error", "code", "message"}, error  # /v2 bodies add orq's top-level code and message
    assert all(b'"error"' not in frame for frame in got[:-2])
    return dict(error["error"])


def content_of(body: bytes) -> str:
    text = ""
    for frame in frames(body):
        if frame == b"[DONE]":
            break
        data = json.loads(frame)
        for choice in data.get("choices") or []:
            text += (choice.get("delta") or {}).get("content") or ""
    return text


def assert_still_serving(faults: Faults) -> None:
    status, body = faults.stream("openai/gpt-4o")
    assert status == 200
    assert frames(body)[-1] == b"[DONE]"
    assert content_of(body).startswith("Echo from gpt-4o: ")


def test_a_parser_that_chokes_mid_stream_ends_with_a_protocol_error(
    faults: Faults, server_errors: ServerErrors
) -> None:
    faults.upstream.state.set_mode("claude-3-5-haiku", "garbage_after", 4)  # after message_start + one delta
    status, body = faults.stream("anthropic/claude-3-5-haiku")
    assert status == 200
    assert content_of(body).startswith("Echo")
    assert error_tail(body) == {
        "message": "anthropic returned a stream event that is not valid for its API (ValueError)",
        "type": "upstream_error",
        "param": None,
        "code": "upstream_bad_response",
        "provider": "anthropic",
    }
    assert server_errors.records == []
    assert_still_serving(faults)


def test_b_an_upstream_cut_mid_stream_ends_with_an_error_event(faults: Faults, server_errors: ServerErrors) -> None:
    faults.upstream.state.set_mode("gpt-4o-cut", "cut_after", 3)
    status, body = faults.stream("openai/gpt-4o-cut", path="/v2/router/chat/completions")
    assert status == 200
    assert content_of(body) != ""
    error = error_tail(body)
    assert error["message"] == "openai closed the stream before it finished"
    assert error["code"] == "upstream_bad_response"
    assert server_errors.records == []
    assert_still_serving(faults)


def test_c_a_cache_whose_set_raises_still_ends_the_stream_cleanly(
    faults: Faults, server_errors: ServerErrors, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cache is written after the last chunk: a failing write costs the cache entry, never the answer."""
    writes: list[str] = []

    async def broken_set(key: str, value: bytes, ttl_seconds: int) -> None:
        writes.append(key)
        raise RuntimeError("cache backend exploded")

    monkeypatch.setattr(faults.gateway.app.cache, "set", broken_set)
    status, body = faults.stream("openai/gpt-4o", cache={"type": "exact_match", "ttl": 60})
    assert status == 200
    assert len(writes) == 1
    got = frames(body)
    assert got[-1] == b"[DONE]" and got.count(b"[DONE]") == 1
    assert all(b'"error"' not in frame for frame in got)
    assert content_of(body).startswith("Echo from gpt-4o: ")
    assert server_errors.records == []
    monkeypatch.undo()
    assert_still_serving(faults)


def test_d_a_recorder_that_raises_leaves_the_stream_whole(
    faults: Faults, server_errors: ServerErrors, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Any] = []

    def broken_submit(call: Any) -> None:
        calls.append(call)
        raise RuntimeError("recorder exploded")

    monkeypatch.setattr(faults.gateway.app.recorder, "submit", broken_submit)
    request_id = f"recorder-fault-{uuid.uuid4().hex}"
    status, body = faults.stream("openai/gpt-4o", request_id=request_id)

    def ours() -> list[Any]:  # an earlier test's stream may still be handing in its record
        return [call for call in calls if getattr(call, "request_id", None) == request_id]

    deadline = time.monotonic() + 5  # the record is built after the response is sent
    while not ours() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(ours()) == 1, "the failing recorder was never reached: this test would prove nothing"
    assert status == 200
    got = frames(body)
    assert got[-1] == b"[DONE]"
    assert all(b'"error"' not in frame for frame in got)
    assert content_of(body).startswith("Echo from gpt-4o: ")
    assert server_errors.records == []
    monkeypatch.undo()
    assert_still_serving(faults)


class Sent:
    """An ASGI `send` that keeps every message."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def __call__(self, message: dict[str, Any]) -> None:
        self.messages.append(message)

    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages if m["type"] == "http.response.body")


async def _chunks_then(failure: BaseException | None, *batches: list[ChatChunk]) -> AsyncIterator[list[ChatChunk]]:
    for batch in batches:
        yield batch
    if failure is not None:
        raise failure


INTERNAL = "Internal gateway error (request req-1); the details are in the gateway log."
FIRST = ChatChunk(
    {"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "Hi"}}]}
)


@pytest.mark.parametrize(
    ("chunks", "message"),
    [
        (
            lambda: _chunks_then(UpstreamConnectionError("openai stream broke", provider="openai"), [FIRST]),
            "openai stream broke",
        ),
        (
            lambda: _chunks_then(RuntimeError("a bug below the iterator"), [FIRST]),
            INTERNAL,
        ),
        (lambda: _chunks_then(None, [FIRST], [ChatChunk({"bad": {1, 2}})]), INTERNAL),
    ],
    ids=["provider-error", "any-exception", "unencodable-chunk"],
)
async def test_write_stream_ends_every_failure_with_one_error_event_and_done(
    chunks: Callable[[], AsyncIterator[list[ChatChunk]]], message: str, caplog: pytest.LogCaptureFixture
) -> None:
    sent = Sent()
    ex = Exchange("/v1/chat/completions", "req-1", 0.0)
    await write_stream(sent, chunks(), [], ex, "openai")
    assert [m["type"] for m in sent.messages].count("http.response.start") == 1
    assert sent.messages[-1] == {"type": "http.response.body", "body": sent.messages[-1]["body"], "more_body": False}
    assert all(m.get("more_body") for m in sent.messages[1:-1])
    got = frames(sent.body())
    assert got[0] == FIRST.raw or json.loads(got[0]) == FIRST.data
    assert error_tail(sent.body())["message"] == message
    assert ex.error is not None and ex.error.message == message
    logged = [r for r in caplog.records if r.name == "portico.http" and "req-1" in r.getMessage()]
    assert len(logged) == (0 if message == "openai stream broke" else 1)
