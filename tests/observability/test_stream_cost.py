"""A stream's cost in its final usage chunk (`with_cost`), as the OpenAI SDK meets it over HTTP: the SDK keeps the
extra usage key (`chunk.usage.cost_usd`) and parses every other chunk as before. The server here frames the
stream exactly as the gateway's SSE writer does (`http/sse.py`), with the usage chunk passed through `with_cost`."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import orjson
import pytest
from aiohttp import web

from portico.core.types import ChatChunk, Usage
from portico.http.sse import DONE, encode_batch
from portico.observability.cost import cost_of, with_cost
from portico.observability.prices import BUILTIN
from tests.upstreams.server import UpstreamState, UpstreamThread

PRICE = BUILTIN["openai"]["gpt-4o"]
USAGE = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
BASE = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o"}


def _chunks(cost: float | None) -> list[ChatChunk]:
    words = [
        ChatChunk({**BASE, "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": None}]})
        for w in ("Hello", " there")
    ]
    end = ChatChunk({**BASE, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    usage = ChatChunk.relayed(orjson.dumps({**BASE, "choices": [], "usage": USAGE}))
    assert usage is not None
    return [*words, end, with_cost(usage, cost)]


@pytest.fixture(scope="module")
def sse_server() -> Iterator[str]:
    def install(app: web.Application, state: UpstreamState) -> None:
        async def chat(request: web.Request) -> web.StreamResponse:
            cost = None if request.query.get("unpriced") else cost_of(PRICE, Usage.from_openai(USAGE))
            response = web.StreamResponse(headers={"content-type": "text/event-stream"})
            await response.prepare(request)
            await response.write(encode_batch(_chunks(cost)) + DONE)
            return response

        app.router.add_post("/v1/chat/completions", chat)

    with UpstreamThread([install]) as server:
        yield server.url


def test_the_openai_sdk_reads_the_cost_from_the_final_usage_chunk(sse_server: str) -> None:
    client = openai.OpenAI(base_url=sse_server + "/v1", api_key="sk-test", max_retries=0)
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello there" and [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    final = chunks[-1]
    assert final.usage is not None and final.usage.total_tokens == 17
    expected = cost_of(PRICE, Usage.from_openai(USAGE))
    assert expected > 0
    assert (final.usage.model_extra or {})["cost_usd"] == pytest.approx(expected)  # `usage.cost_usd`
    assert final.usage.model_dump()["cost_usd"] == pytest.approx(expected)


def test_an_unknown_cost_leaves_the_usage_chunk_as_the_upstream_sent_it(sse_server: str) -> None:
    plain = _chunks(None)[-1]
    assert plain.raw is not None and b"cost_usd" not in plain.raw  # the relayed frame, untouched
    client = openai.OpenAI(base_url=sse_server + "/v1", api_key="sk-test", max_retries=0)
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            extra_query={"unpriced": "1"},
        )
    )
    usage = chunks[-1].usage
    assert usage is not None and "cost_usd" not in usage.model_dump()


def test_with_cost_touches_only_a_chunk_that_carries_usage() -> None:
    content = ChatChunk({**BASE, "choices": [{"index": 0, "delta": {"content": "x"}, "finish_reason": None}]})
    assert with_cost(content, 0.5) is content
    empty = ChatChunk({**BASE, "choices": [], "usage": None})
    assert with_cost(empty, 0.5) is empty
    priced = with_cost(_chunks(None)[-1], 0.0)  # a cache hit: free, and said so
    assert priced.data["usage"] == {**USAGE, "cost_usd": 0.0}
