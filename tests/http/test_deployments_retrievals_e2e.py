"""Deployments with knowledge bases (BEH-KB-05, RQ-D-10/11/13, RS-D-11, SSE-05) through `orq-ai-sdk` and raw HTTP: the
variant's bases searched with the request's `knowledge_filter`, `retrievals` in the answer (the final chunk when
streaming) validated against the deployments schema, `documents` kept for the log and guardrails, never sent."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from orq_ai_sdk import Orq

from tests.conftest import KEY, Stack
from tests.deployments.conftest import put, validate_deployment_chunk
from tests.http.retrieval_helpers import (
    REFUNDS,
    SHIPPING,
    _kb_gateway,
    chat_bodies,
    kb_stack,
    kb_upstream,
    new_kb,
)
from tests.storage.test_call_log_e2e import wait_for_record

__all__ = ["_kb_gateway", "kb_stack", "kb_upstream"]  # fixtures, imported to be used here
HELLO: Any = [{"role": "user", "content": "What about refunds and shipping?"}]
LOGISTICS: Any = {"team": {"eq": "logistics"}}


@pytest.fixture(scope="module")
def kb(_kb_gateway: Any, kb_upstream: Any) -> str:
    return new_kb(Stack(_kb_gateway, kb_upstream))


@pytest.fixture(scope="module")
def reranked_kb(_kb_gateway: Any, kb_upstream: Any) -> str:
    return new_kb(Stack(_kb_gateway, kb_upstream), rerank={"model": "mock/rerank"})


@pytest.fixture
def orq(kb_stack: Stack) -> Iterator[Orq]:
    with Orq(api_key=KEY, server_url=kb_stack.gateway.url) as client:
        yield client


def _deployment(stack: Stack, kb: str, system: str = "You answer support questions.", **extra: Any) -> str:
    key = f"dep-{uuid.uuid4().hex[:10]}"
    body = {
        **extra,
        "key": key,
        "model": "openai/gpt-4o",
        "prompt": {"messages": [{"role": "system", "content": system}]},
        "knowledge_bases": [kb],
    }
    created = stack.post("/v1/admin/deployments", body)
    assert created.status == 201, created.body
    return key


def _sse(raw: bytes) -> list[dict[str, Any]]:
    frames = [f for f in raw.decode().split("\n\n") if f.strip()]
    assert frames[-1] == "data: [DONE]"
    return [json.loads(f.removeprefix("data: ")) for f in frames[:-1]]


def test_invoke_returns_the_retrievals_in_the_spec_shape(kb_stack: Stack, kb: str) -> None:
    key = _deployment(kb_stack, kb)
    body = {"key": key, "messages": HELLO, "invoke_options": {"include_retrievals": True}}
    answer = kb_stack.post("/v2/deployments/invoke", body)
    assert answer.status == 200, answer.body
    reply = answer.json()
    validate_deployment_chunk(reply)
    documents = {r["document"]: r["metadata"] for r in reply["retrievals"]}
    assert set(documents) == {REFUNDS, SHIPPING}
    assert documents[REFUNDS]["file_name"] == "refunds.txt" and documents[REFUNDS]["file_type"] == "txt"
    assert documents[SHIPPING]["file_name"] == "shipping.md" and documents[SHIPPING]["file_type"] == "md"
    for metadata in documents.values():
        assert metadata["page_number"] is None and 0 <= metadata["search_score"] <= 1
        assert "rerank_score" not in metadata, "no rerank ran (AMB-49)"
    (sent,) = chat_bodies(kb_stack)
    assert [m["role"] for m in sent["messages"]] == ["system", "system", "user"]
    assert REFUNDS in sent["messages"][1]["content"] and SHIPPING in sent["messages"][1]["content"]
    without = kb_stack.post("/v2/deployments/invoke", {"key": key, "messages": HELLO}).json()
    assert "retrievals" not in without


def test_the_knowledge_filter_narrows_the_search_with_the_sdk(kb_stack: Stack, orq: Orq, kb: str) -> None:
    key = _deployment(kb_stack, kb, "Answer from: {{" + kb + "}}")
    answer = orq.deployments.invoke(
        key=key,
        messages=HELLO,
        knowledge_filter=LOGISTICS,
        invoke_options={"include_retrievals": True},
    )
    assert answer is not None and answer.retrievals is not None
    assert [r.document for r in answer.retrievals] == [SHIPPING]
    assert answer.retrievals[0].metadata.file_name == "shipping.md"
    (sent,) = chat_bodies(kb_stack)
    assert sent["messages"][0] == {"role": "system", "content": f"Answer from: {SHIPPING}"}, "the placeholder"
    assert len(sent["messages"]) == 2


def test_the_final_stream_chunk_carries_the_retrievals_with_rerank_scores(
    kb_stack: Stack, orq: Orq, reranked_kb: str
) -> None:
    key = _deployment(kb_stack, reranked_kb)
    body = {"key": key, "messages": HELLO, "invoke_options": {"include_retrievals": True}}
    events = _sse(kb_stack.post("/v2/deployments/stream", body).body)
    for event in events:
        validate_deployment_chunk(event)
    assert all("retrievals" not in e for e in events[:-1]) and events[-1]["is_final"] is True
    retrievals = events[-1]["retrievals"]
    assert {r["document"] for r in retrievals} <= {REFUNDS, SHIPPING} and retrievals
    assert all(0 <= r["metadata"]["rerank_score"] <= 1 for r in retrievals)
    chunks = [
        e.data for e in orq.deployments.stream(key=key, messages=HELLO, invoke_options={"include_retrievals": True})
    ]
    final = chunks[-1]
    assert final is not None and final.is_final and final.retrievals is not None
    assert [r.document for r in final.retrievals] == [r["document"] for r in retrievals]


def test_a_malformed_knowledge_filter_is_422_naming_its_path(kb_stack: Stack, kb: str) -> None:
    key = _deployment(kb_stack, kb)
    answer = kb_stack.post("/v2/deployments/invoke", {"key": key, "knowledge_filter": {"year": {"gte": [2020]}}})
    assert answer.status == 422, answer.body
    assert answer.json()["detail"][0]["loc"][:4] == ["body", "knowledge_filter", "year", "gte"]
    assert kb_stack.upstream.requests == []


def test_documents_are_logged_shown_to_guardrails_and_never_sent_to_the_model(kb_stack: Stack, kb: str) -> None:
    judge = {"webhook": {"url": kb_stack.upstream_thread.url + "/judge", "timeout_ms": 2000}}
    stored = put(kb_stack, "/v1/admin/guardrails/docs-judge", judge)
    assert stored.status == 200, stored.body
    key = _deployment(kb_stack, kb, guardrails=[{"id": "docs-judge", "execute_on": "output"}])
    document = {"text": "Members get a 10% discount.", "metadata": {"file_name": "membership.md", "file_type": "md"}}
    request_id = f"docs-{uuid.uuid4().hex[:10]}"
    answer = kb_stack.post(
        "/v2/deployments/invoke",
        {"key": key, "messages": HELLO, "documents": [document]},
        headers={"x-request-id": request_id},
    )
    assert answer.status == 200, answer.body
    (sent,) = chat_bodies(kb_stack)
    assert "Members get a 10% discount." not in json.dumps(sent)
    (shown,) = [r["body"] for r in kb_stack.upstream.requests if r["path"] == "/judge"]
    assert shown["metadata"]["documents"] == [document], "guardrails get the documents as context"
    record = wait_for_record(kb_stack, request_id)
    assert record["metadata"]["documents"] == [document]
    assert {r["preview"] for r in record["retrievals"]} == {REFUNDS[:80], SHIPPING[:80]}
    assert all(r["knowledge_id"] for r in record["retrievals"])
