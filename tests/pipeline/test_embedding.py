"""`pipeline.embedding.Embeddings` as the knowledge service uses it (the `Embedder` seam): batching, routing and
retries, and one call-log record per upstream call; against the mock upstreams in each provider's wire format."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from portico.config.schema import ProviderConfig
from portico.core.errors import UnknownModel, UpstreamHTTPError
from portico.core.knowledge import Embedder
from portico.core.records import CallRecord
from portico.core.types import Usage
from portico.pipeline.embedding import Embeddings, call_log
from portico.pipeline.health import LocalHealth
from portico.pipeline.retry import Backoff
from portico.pipeline.routing import Router
from portico.providers.registry import ProviderRegistry
from portico.providers.transport import Transport
from tests.upstreams import embeddings as upstream
from tests.upstreams.server import UpstreamState, UpstreamThread


@pytest.fixture(scope="module")
def up() -> Iterator[UpstreamThread]:
    with UpstreamThread([upstream.install]) as thread:
        yield thread


@pytest.fixture
def state(up: UpstreamThread) -> Iterator[UpstreamState]:
    up.state.reset()
    yield up.state
    up.state.reset()


class Built:
    def __init__(self, embeddings: Embeddings, records: list[CallRecord], sleeps: list[float]) -> None:
        self.embeddings, self.records, self.sleeps = embeddings, records, sleeps


@pytest.fixture
async def built(up: UpstreamThread, state: UpstreamState) -> AsyncIterator[Built]:
    configs = {
        "cohere": ProviderConfig(base_url=up.url, api_key="co-key"),
        "vllm": ProviderConfig(base_url=f"{up.url}/v1"),
        "openai": ProviderConfig(base_url=f"{up.url}/v1", api_key="sk"),
    }
    records: list[CallRecord] = []
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    router = Router(LocalHealth(), backoff=Backoff(sleep=sleep))
    transport = Transport()
    await transport.start()

    def price(provider: str, model: str, usage: Usage) -> float | None:
        return usage.prompt_tokens * 1e-6 if provider == "cohere" else None

    embeddings = Embeddings(
        ProviderRegistry.build(configs), transport, router, record=call_log(records.append, None), price=price
    )
    try:
        yield Built(embeddings, records, sleeps)
    finally:
        await transport.close()


def test_it_is_the_knowledge_seam(built: Built) -> None:
    seam: Embedder = built.embeddings  # mypy checks the protocol; this checks the methods exist at runtime
    assert callable(seam.embed) and callable(seam.rerank)


async def test_large_inputs_go_in_provider_sized_batches_each_recorded(built: Built, state: UpstreamState) -> None:
    texts = [f"chunk {i}" for i in range(200)]
    vectors = await built.embeddings.embed("cohere/embed-v4.0", texts)
    assert len(vectors) == 200
    assert vectors[0] == upstream.vector("chunk 0") and vectors[199] == upstream.vector("chunk 199")
    assert sorted(len(r["body"]["texts"]) for r in state.requests) == [8, 96, 96]
    assert all(r["body"]["input_type"] == "search_document" for r in state.requests)
    records = built.records
    assert len(records) == 3 and {r.path for r in records} == {"knowledge:embeddings"}
    assert {(r.provider, r.model, r.status, r.dialect) for r in records} == {("cohere", "embed-v4.0", 200, "internal")}
    assert sorted(r.prompt_tokens for r in records) == [24, 288, 288]
    assert sorted(r.cost_usd or 0 for r in records) == pytest.approx([24e-6, 288e-6, 288e-6])


async def test_a_search_query_says_so_to_cohere(built: Built, state: UpstreamState) -> None:
    await built.embeddings.embed("cohere/embed-v4.0", ["where is the cat"], input_type="search_query")
    assert state.requests[-1]["body"]["input_type"] == "search_query"


async def test_transient_failures_are_retried_and_every_attempt_recorded(built: Built, state: UpstreamState) -> None:
    state.fail_with(503, "busy", times=1)
    vectors = await built.embeddings.embed("openai/text-embedding-3-small", ["a", "b"])
    assert vectors == [upstream.vector("a"), upstream.vector("b")]
    assert len(state.requests) == 2 and len(built.sleeps) == 1
    (record,) = built.records
    assert [a["status"] for a in record.attempts] == [503, 200] and record.status == 200


async def test_a_client_error_is_not_retried_and_is_recorded_as_failed(built: Built, state: UpstreamState) -> None:
    state.fail_with(400, "bad input")
    with pytest.raises(UpstreamHTTPError) as caught:
        await built.embeddings.embed("openai/text-embedding-3-small", ["a"])
    assert caught.value.provider == "openai" and "bad input" in caught.value.message
    (record,) = built.records
    assert record.status == 400 and record.error_type == caught.value.type and record.provider == "openai"
    assert len(state.requests) == 1


async def test_unknown_models_fail_before_any_call(built: Built, state: UpstreamState) -> None:
    with pytest.raises(UnknownModel):
        await built.embeddings.embed("nowhere/x", ["a"])
    assert state.requests == [] and await built.embeddings.embed("cohere/x", []) == []


async def test_cohere_rerank(built: Built, state: UpstreamState) -> None:
    documents = ["cats and dogs", "tax law", "the cat sat", "dogs only"]
    ranked = await built.embeddings.rerank("cohere/rerank-v3.5", "the cat", documents, top_n=2)
    assert ranked == [(2, 1.0), (0, 0.0)]  # ties (0.0) in document order
    sent = state.requests[-1]
    assert sent["path"] == "/v2/rerank" and sent["body"]["top_n"] == 2 and sent["body"]["documents"] == documents
    assert built.records[-1].path == "knowledge:rerank" and built.records[-1].status == 200


async def test_vllm_rerank_logits_are_squashed_into_0_1_keeping_order(built: Built, state: UpstreamState) -> None:
    documents = ["alpha beta", "gamma", "alpha beta gamma delta"]
    plain = await built.embeddings.rerank("vllm/bge-reranker", "alpha beta gamma", documents, top_n=3)
    state.set_mode("bge-reranker", "logits")
    squashed = await built.embeddings.rerank("vllm/bge-reranker", "alpha beta gamma", documents, top_n=3)
    assert [i for i, _ in plain] == [i for i, _ in squashed] == [2, 0, 1]
    assert all(0.0 <= s <= 1.0 for _, s in squashed) and squashed[0][1] > squashed[1][1] > squashed[2][1]
    assert state.requests[-1]["path"] == "/v1/rerank"


async def test_providers_without_rerank_say_so(built: Built, state: UpstreamState) -> None:
    with pytest.raises(Exception, match="does not offer rerank") as caught:
        await built.embeddings.rerank("openai/gpt-4o", "q", ["d"], top_n=1)
    assert getattr(caught.value, "http_status", None) == 400 and state.requests == []


async def test_mock_rerank_without_network(built: Built) -> None:
    registry_mock: Any = built.embeddings.providers.get("mock")
    assert registry_mock.name == "mock"
    ranked = await built.embeddings.rerank("mock/rerank", "red apple", ["green pear", "red apple pie", "apple"], 2)
    assert [i for i, _ in ranked] == [1, 2] and ranked[0][1] > ranked[1][1] > 0
