"""The retrieval stage on its own: query choice, AMB-44 injection, agentic rewrite, filter errors, and the cost of a
request that names no knowledge base. The search is an in-test `KnowledgeSearch` (the real service is exercised
over HTTP in tests/http/test_retrieval_e2e.py)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from portico.config.schema import ProviderConfig
from portico.core.errors import NotFound, ValidationFailed
from portico.core.knowledge import Retrieval, SearchQuery
from portico.core.types import ChatRequest, ChatResult, KnowledgeLookup
from portico.pipeline.gateway import Gateway
from portico.pipeline.health import LocalHealth
from portico.pipeline.retrieval import RetrievalStage
from portico.pipeline.retrieval_context import CONTEXT_HEADER, inject, last_user_text, rewritten_query
from portico.pipeline.routing import Router
from portico.pipeline.served import Served
from portico.pipeline.stages import Call
from portico.providers.registry import ProviderRegistry
from portico.providers.transport import Transport


@dataclass
class Shelf:
    """A `KnowledgeSearch` over fixed chunks: every query is noted; an unknown base is a 404 like the service's."""

    chunks: dict[str, list[str]]
    queries: list[tuple[str, SearchQuery]] = field(default_factory=list)

    async def search(self, knowledge_id: str, query: SearchQuery) -> list[Retrieval]:
        self.queries.append((knowledge_id, query))
        if knowledge_id not in self.chunks:
            raise NotFound("no such base", code="knowledge_base_not_found", param="knowledge_id")
        return [
            Retrieval(text, 0.9 - i / 10, knowledge_id, f"{knowledge_id}-{i}", "ds-1", {"file_name": "a.txt"})
            for i, text in enumerate(self.chunks[knowledge_id])
        ]


def _lookup(knowledge_id: str, **search: Any) -> KnowledgeLookup:
    return KnowledgeLookup(knowledge_id, SearchQuery(search.pop("text", ""), **search))


def _request(messages: list[dict[str, Any]], *lookups: KnowledgeLookup) -> ChatRequest:
    return ChatRequest(model="mock/echo", body={"messages": messages}, knowledge=lookups)


def _gateway(shelf: Shelf | None) -> Gateway:
    router = Router(LocalHealth(failure_threshold=3, cooldown_seconds=30))
    mock = ProviderConfig(models=["echo", "rewriter"])
    gateway = Gateway(ProviderRegistry.build({"mock": mock}), Transport(), router)
    if shelf is not None:
        gateway.use_knowledge(shelf)
    return gateway


def _stage(gateway: Gateway) -> RetrievalStage:
    return next(s for s in gateway.stages if isinstance(s, RetrievalStage))


async def test_without_a_placeholder_the_context_goes_after_the_leading_system_messages() -> None:
    shelf = Shelf({"kb": ["Refunds take 14 days.", "Shipping is free."]})
    gateway = _gateway(shelf)
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "earlier"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "How long do refunds take?"},
    ]
    call = Call(_request(messages, _lookup("kb")), Served())
    await _stage(gateway).before(call)
    sent = call.request.body["messages"]
    assert sent[0] == messages[0] and sent[2:] == messages[1:]
    assert sent[1]["role"] == "system" and sent[1]["content"].startswith(CONTEXT_HEADER)
    assert "Refunds take 14 days.\n\nShipping is free." in sent[1]["content"]
    assert shelf.queries[0][1].text == "How long do refunds take?", "no `query`: the last user message"
    assert [r.chunk_id for r in call.served.retrievals or ()] == ["kb-0", "kb-1"]
    assert messages[0] == {"role": "system", "content": "Be brief."}, "the client's messages are not changed"


async def test_a_placeholder_takes_the_chunks_and_the_query_wins_over_the_last_message() -> None:
    shelf = Shelf({"kb-docs": ["A", "B"], "other": ["C"]})
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "Context: {{ kb-docs }} end"},
        {"role": "user", "content": [{"type": "text", "text": "see {{kb-docs}}"}, {"type": "image_url"}]},
    ]
    call = Call(_request(messages, _lookup("kb-docs", text="explicit"), _lookup("other")), Served())
    await _stage(_gateway(shelf)).before(call)
    sent = call.request.body["messages"]
    assert sent[0] == {"role": "system", "content": "Context: A\n\nB end"}
    assert sent[1]["role"] == "system" and sent[1]["content"].startswith(CONTEXT_HEADER), "`other` has no placeholder"
    assert sent[1]["content"].endswith('<context knowledge_base="other">\nC\n</context>')
    assert sent[2]["content"][0]["text"] == "see A\n\nB" and sent[2]["content"][1] == {"type": "image_url"}
    assert [q[1].text for q in shelf.queries] == ["explicit", "see {{kb-docs}}"]


def test_chunk_text_is_inserted_literally_and_nothing_found_adds_nothing() -> None:
    chunk = Retrieval(r"\1 \g<0> $x", 0.5, "kb")
    assert inject([{"role": "user", "content": "{{kb}}"}], [("kb", [chunk])]) == [
        {"role": "user", "content": r"\1 \g<0> $x"}
    ]
    plain = [{"role": "user", "content": "hi"}]
    assert inject(plain, [("kb", [])]) == plain
    assert last_user_text([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]) == "a"
    only_prompt = [{"role": "system", "content": "sys"}, {"role": "user", "content": [{"type": "image_url"}]}]
    assert last_user_text(only_prompt) == "sys", "no user text: the last text, so the base is still searched"


async def test_unknown_base_is_404_and_without_a_service_every_base_is() -> None:
    with pytest.raises(NotFound) as unknown:
        await _gateway(Shelf({})).chat(_request([{"role": "user", "content": "q"}], _lookup("missing")))
    assert unknown.value.code == "knowledge_base_not_found"
    with pytest.raises(NotFound) as unwired:
        await _gateway(None).chat(_request([{"role": "user", "content": "q"}], _lookup("kb")))
    assert unwired.value.code == "knowledge_base_not_found"


async def test_a_malformed_filter_is_422_naming_its_path_before_any_search() -> None:
    shelf = Shelf({"kb": ["A"]})
    good = _lookup("kb", filter={"year": {"gt": 2020}})
    bad = replace(_lookup("kb", filter={"year": {"gt": "soon"}}), at=("body", "orq", "knowledge_bases", 1))
    with pytest.raises(ValidationFailed) as failed:
        await _gateway(shelf).chat(_request([{"role": "user", "content": "q"}], good, bad))
    assert failed.value.errors[0].loc[:6] == ("body", "orq", "knowledge_bases", 1, "filter_by", "year")
    assert shelf.queries == [], "nothing searched (nothing embedded) before every filter is known good"


async def test_the_agentic_model_rewrites_the_query_as_an_attempt_of_the_request() -> None:
    shelf = Shelf({"kb": ["A"]})
    gateway = _gateway(shelf)
    messages = [
        {"role": "user", "content": "Tell me about the refund policy"},
        {"role": "assistant", "content": "Refunds are possible."},
        {"role": "user", "content": "how long does it take"},
    ]
    result, served = await gateway.chat(_request(messages, _lookup("kb", agentic_model="mock/rewriter")))
    assert shelf.queries[0][1].text == "Mock reply to: how long does it take", "the search uses the answer"
    assert [a.model for a in served.attempts] == ["rewriter", "echo"], "the rewrite call is an attempt"
    assert served.model == "echo", "the main call still names what served the request"
    assert result.body["choices"][0]["message"]["content"].endswith("how long does it take")


def test_the_rewrite_answer_is_the_query_unless_it_is_empty() -> None:
    def answer(text: str | None) -> ChatResult:
        return ChatResult({"choices": [{"message": {"role": "assistant", "content": text}}]})

    assert rewritten_query(answer('  "refund duration"  '), "q") == "refund duration"
    assert rewritten_query(answer(""), "q") == "q" and rewritten_query(answer(None), "q") == "q"


def test_a_request_without_knowledge_bases_does_not_ask_for_the_stages() -> None:
    gateway = _gateway(Shelf({}))
    plain = ChatRequest(model="mock/echo", body={"messages": [{"role": "user", "content": "q"}]})
    assert not gateway._asks_for_stages(plain)
    assert gateway._asks_for_stages(replace(plain, knowledge=(_lookup("kb"),)))
