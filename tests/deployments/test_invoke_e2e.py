"""`/v2/deployments/invoke` and `/stream` as orq's SDK meets them, against the OpenAI mock upstream: every answer
and chunk validated against the spec's schema; variants by context, versions, parameters, messages and mocks."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from orq_ai_sdk import Orq

from tests.conftest import KEY, Response, Stack
from tests.deployments.conftest import create, new_key, put, simple, validate_deployment_chunk

ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
HELLO: list[Any] = [{"role": "user", "content": "hello"}]


@pytest.fixture
def orq(stack: Stack) -> Iterator[Orq]:
    with Orq(api_key=KEY, server_url=stack.gateway.url) as client:
        yield client


def sse(answer: Response) -> list[dict[str, Any]]:
    """The JSON events of an SSE body, which must end with `data: [DONE]`."""
    frames = [f for f in answer.body.decode().split("\n\n") if f.strip()]
    assert frames[-1] == "data: [DONE]", frames[-1]
    events = []
    for frame in frames[:-1]:
        assert frame.startswith("data: "), frame
        events.append(json.loads(frame.removeprefix("data: ")))
    return events


def sent(stack: Stack) -> dict[str, Any]:
    """The body the upstream received last."""
    body: dict[str, Any] = stack.upstream.requests[-1]["body"]
    return body


def test_sdk_invoke_answers_in_the_spec_shape(stack: Stack, orq: Orq) -> None:
    key = new_key()
    create(stack, simple(key))
    answer = orq.deployments.invoke(key=key, messages=HELLO)
    assert answer is not None
    assert ULID.match(answer.id) and answer.is_final and answer.object == "chat"
    assert answer.provider == "openai" and answer.model == "gpt-4o"
    assert answer.choices[0].message.content == "Echo from gpt-4o: hello"
    assert answer.choices[0].finish_reason == "stop"
    assert re.fullmatch(r"[0-9a-f]{32}", answer.telemetry.trace_id)
    assert re.fullmatch(r"[0-9a-f]{16}", answer.telemetry.span_id)
    assert answer.usage is None
    upstream = sent(stack)
    assert upstream["model"] == "gpt-4o" and upstream["temperature"] == 0.2 and upstream["max_tokens"] == 50
    assert upstream["messages"] == [{"role": "system", "content": "You help with billing."}, *HELLO]
    raw = stack.post("/v2/deployments/invoke", {"key": key, "messages": HELLO})
    body = raw.json()
    validate_deployment_chunk(body)
    assert body["integration_id"] == "openai"  # the configured provider entry that served
    assert body["provider_response"]["object"] == "chat.completion"
    assert datetime.fromisoformat(body["created"]) <= datetime.fromisoformat(body["finalized"])


def test_sdk_stream_repeats_one_id_and_ends_with_a_final_chunk(stack: Stack, orq: Orq) -> None:
    key = new_key()
    create(stack, simple(key))
    chunks = [event.data for event in orq.deployments.stream(key=key, messages=HELLO) if event.data is not None]
    assert len(chunks) >= 2
    assert len({c.id for c in chunks}) == 1 and len({c.created for c in chunks}) == 1
    assert [c.is_final for c in chunks] == [False] * (len(chunks) - 1) + [True]
    text = "".join(c.choices[0].message.content or "" for c in chunks)
    assert text == "Echo from gpt-4o: hello"
    assert chunks[-1].choices[0].finish_reason == "stop" and chunks[-1].finalized is not None
    events = sse(stack.post("/v2/deployments/stream", {"key": key, "messages": HELLO}))
    for event in events:
        validate_deployment_chunk(event)
    assert {event["integration_id"] for event in events} == {"openai"}
    assert "finalized" not in events[0] and "provider_response" not in events[0]
    assert events[-1]["provider_response"] is None


def test_invoke_with_stream_true_streams(stack: Stack) -> None:
    key = new_key()
    create(stack, simple(key))
    answer = stack.post("/v2/deployments/invoke", {"key": key, "messages": HELLO, "stream": True})
    assert answer.headers["content-type"].startswith("text/event-stream")
    assert sse(answer)[-1]["is_final"] is True


@pytest.mark.parametrize("path", ["/v2/deployments/invoke", "/v2/deployments/stream"])
def test_usage_only_when_asked(stack: Stack, path: str) -> None:
    key = new_key()
    create(stack, simple(key))

    def final(options: dict[str, Any]) -> dict[str, Any]:
        answer = stack.post(path, {"key": key, "messages": HELLO, "invoke_options": options})
        last = sse(answer)[-1] if path.endswith("stream") else answer.json()
        validate_deployment_chunk(last)
        return last

    assert final({})["usage"] is None
    usage = final({"include_usage": True})["usage"]
    assert usage["prompt_tokens"] > 0 and usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert final({"include_retrievals": True})["retrievals"] == []


def test_context_picks_the_variant_first_match_wins(stack: Stack, orq: Orq) -> None:
    key = new_key()
    variants = [
        {"name": n, "model": f"openai/model-{n}", "prompt": {"messages": [{"role": "system", "content": n}]}}
        for n in ("base", "gold", "beta", "nl")
    ]
    routing = [
        {"when": {"tier": {"in": ["gold", "platinum"]}}, "variant": "gold"},
        {"when": {"beta": {"exists": True}}, "variant": "beta"},
        {"when": {"country": "NL", "tier": "free"}, "variant": "nl"},
    ]
    create(stack, {"key": key, "variants": variants, "routing": routing, "default_variant": "base"})
    cases = [
        ({}, "base"),
        ({"tier": "platinum", "beta": 1}, "gold"),
        ({"beta": False}, "beta"),
        ({"country": "NL", "tier": "free"}, "nl"),
        ({"country": "NL"}, "base"),
        ({"tier": True}, "base"),
    ]
    for context, variant in cases:
        answer = orq.deployments.invoke(key=key, context=context, messages=HELLO)
        assert answer is not None and answer.model == f"model-{variant}", (context, answer)
        assert sent(stack)["messages"][0] == {"role": "system", "content": variant}


def test_update_then_rollback_changes_what_is_served(stack: Stack, orq: Orq) -> None:
    key = new_key()
    create(stack, simple(key))
    put(
        stack,
        f"/v1/admin/deployments/{key}",
        {k: v for k, v in simple(key, model="openai/v2-model").items() if k != "key"},
    )
    answer = orq.deployments.invoke(key=key, messages=HELLO)
    assert answer is not None and answer.model == "v2-model"
    assert stack.post(f"/v1/admin/deployments/{key}/rollback", {"version": 1}).status == 200
    answer = orq.deployments.invoke(key=key, messages=HELLO)
    assert answer is not None and answer.model == "gpt-4o"


def test_extra_params_override_and_unknown_keys_are_forwarded(stack: Stack, orq: Orq) -> None:
    key = new_key()
    create(stack, simple(key, model="vllm/meta-llama/Llama-3.1-8B-Instruct"))
    extra = {"temperature": 0.9, "repetition_penalty": 1.1, "my_flag": {"a": 1}}
    answer = orq.deployments.invoke(key=key, messages=HELLO, extra_params=extra)
    assert answer is not None and answer.provider == "openailike"  # vLLM is not in orq's enum (AMB-47)
    upstream = sent(stack)
    assert upstream["temperature"] == 0.9 and upstream["max_tokens"] == 50
    assert upstream["repetition_penalty"] == 1.1 and upstream["my_flag"] == {"a": 1}


def test_prefix_messages_go_after_the_system_message(stack: Stack) -> None:
    key = new_key()
    stored = [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "U1"},
        {"role": "assistant", "content": "A1"},
    ]
    create(stack, {"key": key, "model": "openai/gpt-4o", "prompt": {"messages": stored}})
    prefix = [{"role": "user", "content": "P"}, {"role": "assistant", "content": "PA"}]
    answer = stack.post("/v2/deployments/invoke", {"key": key, "prefix_messages": prefix, "messages": HELLO})
    assert answer.status == 200, answer.body
    assert [m["content"] for m in sent(stack)["messages"]] == ["S", "P", "PA", "U1", "A1", "hello"]


def test_prefix_messages_lead_when_there_is_no_system_message(stack: Stack) -> None:
    key = new_key()
    create(stack, {"key": key, "model": "openai/gpt-4o", "prompt": {"messages": [{"role": "user", "content": "U"}]}})
    answer = stack.post("/v2/deployments/invoke", {"key": key, "prefix_messages": [{"role": "user", "content": "P"}]})
    assert answer.status == 200, answer.body
    assert [m["content"] for m in sent(stack)["messages"]] == ["P", "U"]


@pytest.mark.parametrize("path", ["/v2/deployments/invoke", "/v2/deployments/stream"])
def test_mock_response_calls_no_upstream(stack: Stack, path: str) -> None:
    key = new_key()
    create(stack, simple(key))
    options = {"mock_response": "canned", "include_usage": True}
    answer = stack.post(path, {"key": key, "messages": HELLO, "invoke_options": options})
    assert answer.status == 200, answer.body
    events = sse(answer) if path.endswith("stream") else [answer.json()]
    for event in events:
        validate_deployment_chunk(event)
    assert "".join(e["choices"][0]["message"]["content"] or "" for e in events) == "canned"
    assert events[-1]["usage"]["total_tokens"] == 0 and events[-1]["choices"][0]["finish_reason"] == "stop"
    assert events[-1]["model"] == "gpt-4o" and events[-1]["provider"] == "openai"
    assert all("integration_id" not in event for event in events)  # no provider answered
    assert stack.upstream.requests == []


def test_inputs_fill_defaults_object_and_array_forms(stack: Stack) -> None:
    key = new_key()
    messages = [{"role": "system", "content": "{{greeting}}, {{name}} from {{team}}"}]
    create(stack, {"key": key, "model": "openai/gpt-4o", "prompt": {"messages": messages}, "inputs": {"team": "ops"}})
    stack.post("/v2/deployments/invoke", {"key": key, "inputs": {"greeting": "Hi", "name": "Ann"}})
    assert sent(stack)["messages"][0]["content"] == "Hi, Ann from ops"
    array = [{"key": "greeting", "value": "Yo"}, {"key": "name", "value": "Bo"}, {"key": "team", "value": "dev"}]
    stack.post("/v2/deployments/invoke", {"key": key, "inputs": array})
    assert sent(stack)["messages"][0]["content"] == "Yo, Bo from dev"
    missing = stack.post("/v2/deployments/invoke", {"key": key, "inputs": {"greeting": "Hi"}})
    assert missing.status == 422
    assert missing.json()["detail"][0]["loc"] == ["body", "inputs", "name"]
    assert "name" in missing.json()["message"]


def test_the_variant_routes_like_the_router_fallback_on_failure(stack: Stack) -> None:
    key = new_key()
    create(stack, simple(key, model="openai/primary", fallbacks=["openai/backup"]))
    stack.upstream.fail_with(500, model="primary")
    answer = stack.post("/v2/deployments/invoke", {"key": key, "messages": HELLO})
    assert answer.status == 200, answer.body
    assert answer.json()["model"] == "backup"
    assert stack.upstream.models_seen() == ["primary", "backup"]


def test_tool_calls_come_back_as_the_tool_calls_message(stack: Stack) -> None:
    key = new_key()
    tools = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]
    create(stack, simple(key, tools=tools))
    answer = stack.post("/v2/deployments/invoke", {"key": key, "messages": HELLO}).json()
    validate_deployment_chunk(answer)
    message = answer["choices"][0]["message"]
    assert message["type"] == "tool_calls" and message["tool_calls"][0]["function"]["name"] == "weather"
    events = sse(stack.post("/v2/deployments/stream", {"key": key, "messages": HELLO}))
    for event in events:
        validate_deployment_chunk(event)
    final = events[-1]["choices"][0]["message"]
    assert final["type"] == "tool_calls"
    assert json.loads(final["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}


def test_the_variant_cache_and_timeout_work_as_on_the_router(stack: Stack) -> None:
    key = new_key()
    create(stack, simple(key, cache={"ttl": 60}))
    body = {"key": key, "messages": [{"role": "user", "content": f"cache me {key}"}]}
    first, second = stack.post("/v2/deployments/invoke", body), stack.post("/v2/deployments/invoke", body)
    assert first.headers["x-portico-cache"] == "MISS" and second.headers["x-portico-cache"] == "HIT"
    assert second.json()["choices"] == first.json()["choices"] and len(stack.upstream.requests) == 1
    slow = new_key()
    create(stack, simple(slow, model="openai/slow-model", timeout={"call_timeout": 300}, fallbacks=["openai/gpt-4o"]))
    answer = stack.post("/v2/deployments/invoke", {"key": slow, "messages": HELLO})
    assert answer.status == 200 and answer.json()["model"] == "gpt-4o"
    assert stack.upstream.models_seen() == ["gpt-4o", "slow-model", "gpt-4o"]


def test_a_client_trace_id_is_kept_and_the_span_is_new(stack: Stack) -> None:
    key = new_key()
    create(stack, simple(key))
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    parent = {"traceparent": f"00-{trace}-00f067aa0ba902b7-01"}
    for headers in (parent, {"x-portkey-trace-id": trace}):
        answer = stack.post("/v2/deployments/invoke", {"key": key, "messages": HELLO}, headers=headers).json()
        assert answer["telemetry"]["trace_id"] == trace
        assert answer["telemetry"]["span_id"] != "00f067aa0ba902b7"
    other = stack.post("/v2/deployments/invoke", {"key": key}, headers={"x-portkey-trace-id": "my-trace"}).json()
    assert re.fullmatch(r"[0-9a-f]{32}", other["telemetry"]["trace_id"])


def test_a_request_that_adds_nothing_sends_the_variant_each_time_and_others_do_not_leak(stack: Stack) -> None:
    """Requests that add nothing share a body worked out once per version (pipeline/deployments.py `_Base`):
    what other requests add never shows in it, a stream still asks for usage, and a new version is seen."""
    key = new_key()
    messages = [{"role": "system", "content": "{{greeting}} from {{team}}"}]
    create(
        stack,
        {
            "key": key,
            "model": "openai/gpt-4o",
            "prompt": {"messages": messages},
            "inputs": {"greeting": "Hi", "team": "ops"},
            "parameters": {"max_tokens": 50},
            "fallbacks": ["openai/gpt-4o-mini"],
        },
    )
    plain = {"key": key}
    assert stack.post("/v2/deployments/invoke", plain).status == 200
    first = sent(stack)
    assert first["messages"] == [{"role": "system", "content": "Hi from ops"}] and first["max_tokens"] == 50
    busy = {"key": key, "inputs": {"greeting": "Yo"}, "messages": HELLO, "extra_params": {"temperature": 0.3}}
    assert stack.post("/v2/deployments/invoke", busy).status == 200
    assert [m["content"] for m in sent(stack)["messages"]] == ["Yo from ops", "hello"]
    assert sent(stack)["temperature"] == 0.3
    streamed = stack.post("/v2/deployments/stream", plain)
    assert streamed.status == 200 and sse(streamed)[-1]["is_final"] is True
    assert sent(stack)["stream_options"] == {"include_usage": True}
    for _ in range(2):
        answer = stack.post("/v2/deployments/invoke", plain)
        assert answer.status == 200 and answer.json()["choices"][0]["message"]["type"] == "content"
        assert sent(stack) == first
    update = {"model": "openai/gpt-4o", "prompt": {"messages": messages}, "inputs": {"greeting": "Hey", "team": "ops"}}
    assert put(stack, f"/v1/admin/deployments/{key}", update).status == 200
    assert stack.post("/v2/deployments/invoke", plain).status == 200
    assert sent(stack)["messages"] == [{"role": "system", "content": "Hey from ops"}]
    assert "max_tokens" not in sent(stack)
