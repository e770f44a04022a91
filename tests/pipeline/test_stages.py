"""The stage list: order, answers that short-circuit, after hooks, stream wrappers, and a cache that fails open."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from portico.cache.memory import MemoryCache
from portico.core.errors import NotFound, RequestError
from portico.core.knowledge import SearchQuery
from portico.core.types import CacheOptions, ChatChunk, ChatRequest, ChatResult, KnowledgeLookup
from portico.pipeline.gateway import Gateway
from portico.pipeline.health import LocalHealth
from portico.pipeline.routing import Router
from portico.pipeline.served import Served
from portico.pipeline.stages import Call, Chunks, Stage
from portico.providers.registry import ProviderRegistry
from portico.providers.transport import Transport


def _request(**fields: object) -> ChatRequest:
    body = {"messages": [{"role": "user", "content": "hello stages"}]}
    return replace(ChatRequest(model="mock/echo", body=body), **fields)  # type: ignore[arg-type]


class Probe(Stage):
    """Notes every hook it is given, optionally answering in `before`."""

    def __init__(self, name: str, log: list[str], *, on: bool = True, answer: ChatResult | None = None) -> None:
        self.name, self.log, self.on, self.answer = name, log, on, answer

    def active(self, request: ChatRequest) -> bool:
        return self.on

    async def before(self, call: Call) -> ChatResult | None:
        self.log.append(f"{self.name}.before")
        return self.answer

    async def after(self, call: Call, result: ChatResult) -> ChatResult:
        self.log.append(f"{self.name}.after")
        return result

    def after_stream(self, call: Call, chunks: Chunks) -> Chunks:
        self.log.append(f"{self.name}.wrap")
        return self._count(chunks)

    async def _count(self, chunks: Chunks) -> AsyncIterator[list[ChatChunk]]:
        async for batch in chunks:
            self.log.append(f"{self.name}.batch")
            yield batch


def _gateway(stages: list[Stage] | None = None, cache: MemoryCache | None = None) -> Gateway:
    router = Router(LocalHealth(failure_threshold=3, cooldown_seconds=30))
    return Gateway(ProviderRegistry.build({}), Transport(), router, cache, stages=stages)


async def test_before_hooks_run_in_order_and_after_hooks_in_reverse_skipping_inactive_stages() -> None:
    log: list[str] = []
    gateway = _gateway([Probe("a", log), Probe("off", log, on=False), Probe("b", log)])
    result, served = await gateway.chat(_request())
    assert log == ["a.before", "b.before", "b.after", "a.after"]
    assert result.body["choices"][0]["message"]["content"]
    assert served.provider == "mock" and len(served.attempts) == 1


async def test_a_stage_that_answers_skips_the_routed_call_and_every_stage_below_it() -> None:
    log: list[str] = []
    canned = ChatResult(body={"id": "canned", "choices": []}, provider="stage", model="m")
    gateway = _gateway([Probe("a", log), Probe("answer", log, answer=canned), Probe("below", log)])
    result, served = await gateway.chat(_request())
    assert result is canned
    assert log == ["a.before", "answer.before", "a.after"]
    assert served.attempts == []


async def test_stream_wrappers_see_every_batch_usage_included_though_the_client_did_not_ask() -> None:
    log: list[str] = []
    seen_usage: list[bool] = []

    class Usage(Stage):
        def active(self, request: ChatRequest) -> bool:
            return True

        def after_stream(self, call: Call, chunks: Chunks) -> Chunks:
            return self._watch(chunks)

        async def _watch(self, chunks: Chunks) -> AsyncIterator[list[ChatChunk]]:
            async for batch in chunks:
                seen_usage.extend(chunk.has_usage_key for chunk in batch)
                yield batch

    gateway = _gateway([Probe("outer", log), Usage(), Probe("inner", log)])
    chunks, served = await gateway.stream(_request(stream=True, include_usage=False))
    relayed = [chunk async for batch in chunks for chunk in batch]
    assert log[:4] == ["outer.before", "inner.before", "inner.wrap", "outer.wrap"]
    assert log.count("inner.batch") == log.count("outer.batch") > 0
    assert any(seen_usage), "stages see the upstream's usage chunk"
    assert not any(chunk.has_usage_key for chunk in relayed), "the client did not ask for usage"
    assert served.usage is not None and served.usage.total_tokens > 0


async def test_the_default_list_refuses_features_that_must_never_be_silently_ignored() -> None:
    gateway = _gateway()
    with pytest.raises(NotFound) as prompt:
        await gateway.chat(_request(prompt_id="p-1"))
    assert prompt.value.code == "prompt_not_found"
    with pytest.raises(NotFound) as knowledge:
        await gateway.chat(_request(knowledge=(KnowledgeLookup("kb-1", SearchQuery("")),)))
    assert knowledge.value.code == "knowledge_base_not_found"
    with pytest.raises(RequestError) as guard:
        await gateway.chat(_request(guardrails=(("g-1", "input"),)))
    assert guard.value.code == "unknown_guardrail"


async def test_variables_render_before_the_call() -> None:
    gateway = _gateway()
    body = {"messages": [{"role": "user", "content": "hello {{name}}"}]}
    result, _ = await gateway.chat(replace(_request(), body=body, variables={"name": "Ada"}))
    assert "hello Ada" in result.body["choices"][0]["message"]["content"]


class BrokenCache(MemoryCache):
    async def get(self, key: str) -> bytes | None:
        raise RuntimeError("cache read exploded")

    async def set(self, key: str, value: bytes, ttl_seconds: int) -> None:
        raise RuntimeError("cache write exploded")


async def test_a_cache_that_raises_never_fails_the_request_json_or_stream() -> None:
    gateway = _gateway(cache=BrokenCache(1 << 20))
    assert "cache" in [stage.name for stage in gateway.stages]
    request = _request(cache=CacheOptions(ttl_seconds=60))
    result, served = await gateway.chat(request)
    assert result.body["choices"] and served.cache_status in {"MISS", "BYPASS"}
    chunks, _ = await gateway.stream(replace(request, stream=True))
    assert [chunk async for batch in chunks for chunk in batch]


async def test_a_stream_is_cached_once_complete_and_replayed_to_a_json_client() -> None:
    gateway = _gateway(cache=MemoryCache(1 << 20))
    request = _request(cache=CacheOptions(ttl_seconds=60))
    chunks, first = await gateway.stream(replace(request, stream=True))
    streamed = [chunk async for batch in chunks for chunk in batch]
    assert first.cache_status == "MISS" and streamed
    result, second = await gateway.chat(request)
    assert second.cache_status == "HIT" and second.attempts == []
    assert result.body["choices"][0]["message"]["content"] == "".join(
        chunk.data["choices"][0]["delta"].get("content") or "" for chunk in streamed if chunk.data.get("choices")
    )


def test_served_is_shared_not_imported_from_the_gateway() -> None:
    import portico.pipeline.streaming as streaming

    assert "portico.pipeline.gateway" not in {getattr(v, "__module__", "") for v in vars(streaming).values()}
    assert Served().attempts == []
