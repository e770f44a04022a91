"""`knowledge_bases` on router calls, as a user meets it: the `openai` SDK (`extra_body`) against a real gateway whose
knowledge base was created and filled through the admin API, embeddings by the OpenAI mock's `/v1/embeddings`.
The upstream mock shows where the context arrived (AMB-44); the call log shows what was retrieved."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from portico.pipeline.retrieval_context import CONTEXT_HEADER, REWRITE_INSTRUCTIONS
from tests.conftest import KEY, Stack
from tests.http.retrieval_helpers import (
    EMBEDDING_MODEL,
    REFUNDS,
    REWRITE_ANSWER,
    SHIPPING,
    _kb_gateway,
    chat_bodies,
    kb_stack,
    kb_upstream,
    new_kb,
)
from tests.storage.test_call_log_e2e import wait_for_record

__all__ = ["_kb_gateway", "kb_stack", "kb_upstream"]  # fixtures, imported to be used here


@pytest.fixture
def client(kb_stack: Stack) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(api_key=KEY, base_url=kb_stack.gateway.url + "/v1", max_retries=0) as sdk:
        yield sdk


@pytest.fixture(scope="module")
def kb(_kb_gateway: Any, kb_upstream: Any) -> str:
    return new_kb(Stack(_kb_gateway, kb_upstream))


def _ask(client: openai.OpenAI, messages: list[Any], entries: list[dict[str, Any]], **extra: Any) -> Any:
    request_id = f"rag-{uuid.uuid4().hex[:10]}"
    return client.chat.completions.with_raw_response.create(
        model="openai/gpt-4o",
        messages=messages,
        extra_body={"knowledge_bases": entries, **extra},
        extra_headers={"x-request-id": request_id},
    ), request_id


def test_the_context_arrives_as_a_system_message_after_the_clients_own(
    kb_stack: Stack, client: openai.OpenAI, kb: str
) -> None:
    messages: Any = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "How long do refunds take?"},
    ]
    entry = {"knowledge_id": kb, "filter_by": {"team": {"eq": "billing"}}, "search_type": "vector_search"}
    raw, request_id = _ask(client, messages, [entry])
    assert raw.parse().choices[0].message.content == "Echo from gpt-4o: How long do refunds take?"
    (sent,) = chat_bodies(kb_stack)
    assert [m["role"] for m in sent["messages"]] == ["system", "system", "user"]
    assert sent["messages"][0] == messages[0] and sent["messages"][2] == messages[1]
    context = sent["messages"][1]["content"]
    assert context.startswith(CONTEXT_HEADER) and REFUNDS in context and SHIPPING not in context
    assert "knowledge_bases" not in sent, "the gateway's field is not the model's"
    record = wait_for_record(kb_stack, request_id)
    (found,) = record["retrievals"]
    assert found["knowledge_id"] == kb and found["preview"] == REFUNDS[:80] and 0 <= found["search_score"] <= 1
    assert found["chunk_id"] and found["rerank_score"] is None


def test_a_placeholder_takes_the_chunks_in_place_on_a_stream(kb_stack: Stack, client: openai.OpenAI, kb: str) -> None:
    messages: Any = [
        {"role": "system", "content": "Policy:\n{{" + kb + "}}\nAnswer from the policy only."},
        {"role": "user", "content": "Is shipping free?"},
    ]
    entry = {"knowledge_id": kb, "filter_by": {"year": {"lt": 2023}}, "top_k": 3}
    stream = client.chat.completions.create(
        model="openai/gpt-4o", messages=messages, stream=True, extra_body={"knowledge_bases": [entry]}
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == "Echo from gpt-4o: Is shipping free?"
    (sent,) = chat_bodies(kb_stack)
    assert sent["messages"] == [
        {"role": "system", "content": f"Policy:\n{SHIPPING}\nAnswer from the policy only."},
        messages[1],
    ]


def test_the_orq_container_on_v2_and_the_entrys_own_query(kb_stack: Stack, kb: str) -> None:
    body = {
        "model": "openai/gpt-4o",
        "messages": [{"role": "user", "content": "hello"}],
        "orq": {"knowledge_bases": [{"knowledge_id": kb, "query": SHIPPING, "top_k": 1}]},
    }
    answer = kb_stack.post("/v2/router/chat/completions", body)
    assert answer.status == 200, answer.body
    (sent,) = chat_bodies(kb_stack)
    assert SHIPPING in sent["messages"][0]["content"] and REFUNDS not in sent["messages"][0]["content"]


def test_an_unknown_base_is_404_and_nothing_is_called(kb_stack: Stack, client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        _ask(client, [{"role": "user", "content": "q"}], [{"knowledge_id": "no-such-kb"}])
    assert "no-such-kb" in str(missing.value.body)
    answer = kb_stack.post(
        "/v2/router/chat/completions",
        {
            "model": "openai/gpt-4o",
            "messages": [{"role": "user", "content": "q"}],
            "knowledge_bases": [{"knowledge_id": "no-such-kb"}],
        },
    )
    assert answer.status == 404 and answer.json()["error"]["code"] == "knowledge_base_not_found"
    assert kb_stack.upstream.requests == []


@pytest.mark.parametrize(
    ("bad", "where"),
    [
        ({"year": {"gt": "soon"}}, ["year", "gt"]),
        ({"and": [{"team": {"eq": "billing"}}, {"year": {"between": [1, 2]}}]}, ["and", 1, "year"]),
    ],
)
def test_a_malformed_filter_is_422_naming_its_path(kb_stack: Stack, kb: str, bad: Any, where: list[Any]) -> None:
    body = {
        "model": "openai/gpt-4o",
        "messages": [{"role": "user", "content": "q"}],
        "knowledge_bases": [{"knowledge_id": kb}, {"knowledge_id": kb, "filter_by": bad}],
    }
    answer = kb_stack.post("/v2/router/chat/completions", body)
    assert answer.status == 422, answer.body
    loc = answer.json()["detail"][0]["loc"]
    assert loc[: 4 + len(where)] == ["body", "knowledge_bases", 1, "filter_by", *where]
    assert kb_stack.upstream.requests == [], "nothing embedded, nothing sent"


def test_an_embedding_failure_fails_the_request_naming_the_upstream_error(
    kb_stack: Stack, client: openai.OpenAI, kb: str
) -> None:
    kb_stack.upstream.fail_with(500, "embedding backend is down", model=EMBEDDING_MODEL)
    with pytest.raises(openai.APIStatusError) as failed:
        _ask(client, [{"role": "user", "content": "q"}], [{"knowledge_id": kb, "search_type": "vector_search"}])
    assert failed.value.status_code >= 500
    assert "embedding backend is down" in str(failed.value.body)
    assert chat_bodies(kb_stack) == [], "the model is not asked without its context"


def test_the_agentic_model_rewrites_the_query_and_the_search_uses_its_answer(
    kb_stack: Stack, client: openai.OpenAI, kb: str
) -> None:
    messages: Any = [
        {"role": "user", "content": "I ordered a lamp for 80 euros."},
        {"role": "assistant", "content": "Thanks, noted."},
        {"role": "user", "content": "Do I pay for that?"},
    ]
    entry = {
        "knowledge_id": kb,
        "top_k": 1,
        "search_type": "vector_search",
        "agentic_rag_config": {"model": "rewriter/rw-1"},
    }
    raw, request_id = _ask(client, messages, [entry])
    assert raw.http_response.status_code == 200
    (rewrite,) = chat_bodies(kb_stack, "rw-1")
    assert rewrite["messages"][0]["content"].startswith(REWRITE_INSTRUCTIONS)
    assert "user: I ordered a lamp for 80 euros." in rewrite["messages"][0]["content"]
    assert rewrite["messages"][1] == {"role": "user", "content": "Do I pay for that?"}
    (sent,) = chat_bodies(kb_stack)
    assert SHIPPING in sent["messages"][0]["content"], "the rewritten query found the shipping chunk"
    assert REWRITE_ANSWER == SHIPPING
    record = wait_for_record(kb_stack, request_id)
    assert [a["model"] for a in record["attempts"]] == ["rw-1", "gpt-4o"], "the rewrite is an attempt of the call"
    assert record["model"] == "gpt-4o" and record["provider"] == "openai"
    (found,) = record["retrievals"]
    assert found["search_score"] > 0.99 and found["preview"] == SHIPPING[:80], "the query was the rewrite"


def test_a_request_without_knowledge_bases_records_none(kb_stack: Stack, client: openai.OpenAI) -> None:
    request_id = f"plain-{uuid.uuid4().hex[:10]}"
    client.chat.completions.create(
        model="openai/gpt-4o", messages=[{"role": "user", "content": "hi"}], extra_headers={"x-request-id": request_id}
    )
    assert wait_for_record(kb_stack, request_id)["retrievals"] is None
    (sent,) = chat_bodies(kb_stack)
    assert sent["messages"] == [{"role": "user", "content": "hi"}]
