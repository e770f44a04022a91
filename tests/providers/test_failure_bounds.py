"""What a failed call keeps is bounded: every adapter, fed large malformed answers, raises errors whose message,
body excerpt, cause chain and traceback hold a short excerpt at most, never the body; many of them held at once
stay small in memory."""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest

from portico.config.schema import ProviderConfig
from portico.core.errors import ProviderError
from portico.core.types import ChatRequest
from portico.providers.base import CallOptions, HttpProvider, StreamStart
from portico.providers.registry import ProviderRegistry
from portico.providers.transport import Transport, UpstreamEvent

BIG = 5 * 1024 * 1024
CONFIGS: dict[str, dict[str, Any]] = {
    "openai": {"api_key": "sk-bounds-test-key"},
    "anthropic": {"api_key": "sk-ant-bounds-test"},
    "gemini": {"api_key": "AIza-bounds-test"},
    "cohere": {"api_key": "co-bounds-test"},
    "bedrock": {"api_key": "bedrock-bounds-test", "region": "us-east-1"},
    "azure": {"api_key": "azure-bounds-test", "base_url": "https://example.openai.azure.com"},
}
MODELS = {"bedrock": "anthropic.claude-3-haiku", "azure": "deploy"}


def bodies() -> dict[str, tuple[int, bytes]]:
    """Large answers no adapter can take as they are (built per test: 5 MB each)."""
    filler = "x" * BIG
    return {
        "html-500": (500, b"<html>" + filler.encode() + b"</html>"),
        "json-error-400": (400, orjson.dumps({"error": {"message": filler, "type": "invalid_request_error"}})),
        "bare-string-429": (429, orjson.dumps(filler)),
        "truncated-json-200": (200, b'{"id": "' + filler.encode()),
        "wrong-shape-200": (
            200,
            orjson.dumps({k: filler for k in ("choices", "candidates", "output", "message", "content")}),
        ),
    }


class FakeUpstream:
    def __init__(self, status: int, body: bytes) -> None:
        self.status, self._body = status, body
        self.headers: Mapping[str, str] = {}

    async def read(self) -> bytes:
        return self._body

    async def events(self) -> AsyncIterator[list[UpstreamEvent]]:
        yield [UpstreamEvent(self._body, "message_start")]


class FakeTransport(Transport):
    """Answers every call with one scripted status and body."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__()
        self.status, self.body = status, body

    async def send(self, *args: Any, **kwargs: Any) -> tuple[int, Mapping[str, str], bytes]:
        return self.status, {}, self.body

    @asynccontextmanager
    async def open_stream(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        yield FakeUpstream(self.status, self.body)


def provider(name: str) -> HttpProvider:
    built = ProviderRegistry.build({name: ProviderConfig.model_validate(CONFIGS[name])}).get(name)
    assert isinstance(built, HttpProvider)
    return built


async def fail(adapter: HttpProvider, transport: Transport, stream: bool) -> ProviderError:
    model = MODELS.get(adapter.name, "m")
    request = ChatRequest(model=f"{adapter.name}/{model}", body={"messages": [{"role": "user", "content": "hi"}]})
    options = CallOptions(timeout_s=5)
    with pytest.raises(ProviderError) as caught:
        if stream:
            request.stream = True
            async for _ in adapter.stream(request, model, transport, options, StreamStart()):
                pass
        else:
            await adapter.complete(request, model, transport, options)
    return caught.value


def held_bytes(error: ProviderError) -> int:
    """The largest text the error holds anywhere: message, args, body, and the locals of its traceback frames."""
    sizes = [len(error.message), len(repr(error.args)), len(repr(error.body))]
    assert error.__cause__ is None and error.__context__ is None
    tb = error.__traceback__
    while tb is not None:
        sizes.extend(len(v) for v in tb.tb_frame.f_locals.values() if isinstance(v, bytes | str | bytearray))
        tb = tb.tb_next
    return max(sizes)


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_large_malformed_answers_leave_only_an_excerpt(name: str, stream: bool) -> None:
    adapter = provider(name)
    for label, (status, body) in bodies().items():
        error = await fail(adapter, FakeTransport(status, body), stream)
        assert held_bytes(error) <= 2000, (label, error.message[:200])
        assert error.provider == name


async def test_many_failed_answers_held_at_once_stay_small() -> None:
    """40 errors from 5 MB answers kept in a list (as a log queue or a retry history might) hold < 2 MB."""
    adapter = provider("openai")
    status, body = bodies()["json-error-400"]
    transport = FakeTransport(status, body)
    del body
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = [await fail(adapter, transport, stream=i % 2 == 1) for i in range(40)]
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(kept) == 40
    assert grown < 2 * 1024 * 1024, grown
