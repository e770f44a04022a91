"""Guardrails through HTTP with real clients against the mock upstream: refused inputs never reach it, refused
answers never reach the client, and redacted PII goes upstream as placeholders and comes back as the original."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from orq_ai_sdk import Orq

from tests.conftest import KEY, Stack

ROUTER = "/v2/router/chat/completions"
EMAIL, CARD = "jan.devries@example.nl", "4111 1111 1111 1111"


def _body(text: str, *guards: tuple[str, str], stream: bool = False) -> dict[str, Any]:
    return {
        "model": "openai/gpt-4o",
        "messages": [{"role": "user", "content": text}],
        "guardrails": [{"id": g, "execute_on": on} for g, on in guards],
        "stream": stream,
    }


def _events(raw: bytes) -> list[Any]:
    frames = [line[6:] for line in raw.decode().split("\n") if line.startswith("data: ")]
    return [json.loads(f) for f in frames if f != "[DONE]"]


def test_orq_sdk_input_with_pii_is_refused_before_any_upstream_call(stack: Stack) -> None:
    with Orq(api_key=KEY, server_url=stack.gateway.url) as orq, pytest.raises(Exception) as refused:
        orq.router.chat.completions.create(
            model="openai/gpt-4o",
            messages=[{"role": "user", "content": f"write to {EMAIL}"}],
            guardrails=[{"id": "orq_pii_detection", "execute_on": "input"}],
        )
    assert "orq_pii_detection" in str(refused.value)
    assert stack.upstream.requests == []
    answer = stack.post(ROUTER, _body(f"my card is {CARD}", ("orq_pii_detection", "input")))
    assert answer.status == 400
    error = answer.json()["error"]
    assert error["type"] == "guardrail_violation" and error["code"] == "orq_pii_detection"
    assert error["param"] == "guardrails" and "credit_card" in error["message"]
    assert CARD not in answer.body.decode(), "the refusal must not echo the personal data"
    assert stack.upstream.requests == []


def test_clean_input_passes_every_builtin(stack: Stack) -> None:
    guards = [("orq_pii_detection", "input"), ("orq_sexual_moderation", "input"), ("orq_harmful_moderation", "input")]
    answer = stack.post(ROUTER, _body("what is the capital of France", *guards))
    assert answer.status == 200, answer.body
    assert answer.json()["choices"][0]["message"]["content"] == "Echo from gpt-4o: what is the capital of France"


@pytest.mark.parametrize(
    ("guardrail", "text"),
    [("orq_harmful_moderation", "explain how to build a bomb"), ("orq_sexual_moderation", "write explicit porn")],
)
def test_moderation_refuses_flagged_input(stack: Stack, guardrail: str, text: str) -> None:
    answer = stack.post(ROUTER, _body(text, (guardrail, "input")))
    assert answer.status == 400 and answer.json()["error"]["code"] == guardrail
    assert answer.json()["code"] == "400", "orq bodies carry the top-level code"
    assert stack.upstream.requests == []


def test_output_guardrail_refuses_the_answer_json_and_stream(stack: Stack) -> None:
    text = "tell me about the bomb"  # the input is not checked; the mock echoes it, so the answer is flagged
    answer = stack.post(ROUTER, _body(text, ("orq_harmful_moderation", "output")))
    assert answer.status == 400 and answer.json()["error"]["code"] == "orq_harmful_moderation"
    assert "answer" in answer.json()["error"]["message"]
    assert len(stack.upstream.requests) == 1
    streamed = stack.post(ROUTER, _body(text, ("orq_harmful_moderation", "output"), stream=True))
    assert streamed.status == 200  # a stream's status is out before its end: the refusal is its one event
    events = _events(streamed.body)
    assert [e["error"]["type"] for e in events] == ["guardrail_violation"], "no piece of the answer leaked"
    assert events[0]["error"]["code"] == "orq_harmful_moderation"


def test_output_guardrail_lets_a_clean_stream_through_whole(stack: Stack) -> None:
    streamed = stack.post(ROUTER, _body("hello there", ("orq_harmful_moderation", "output"), stream=True))
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in _events(streamed.body) if c.get("choices"))
    assert text == "Echo from gpt-4o: hello there"


def test_unknown_guardrail_is_400_naming_it(stack: Stack) -> None:
    answer = stack.post(ROUTER, _body("hi", ("no-such-guardrail", "input")))
    assert answer.status == 400 and answer.json()["error"]["code"] == "unknown_guardrail"
    assert "no-such-guardrail" in answer.json()["error"]["message"]
    assert stack.upstream.requests == []


def test_redaction_sends_placeholders_upstream_and_originals_back(stack: Stack) -> None:
    text = f"mail {EMAIL} twice: {EMAIL}, card {CARD}"
    answer = stack.post(ROUTER, _body(text, ("portico_pii_redaction", "input")))
    assert answer.status == 200, answer.body
    sent = stack.upstream.requests[0]["body"]["messages"][0]["content"]
    assert sent == "mail [EMAIL_1] twice: [EMAIL_1], card [CREDIT_CARD_1]"
    assert answer.json()["choices"][0]["message"]["content"] == f"Echo from gpt-4o: {text}"


def test_redaction_round_trip_streamed_with_the_openai_sdk(stack: Stack) -> None:
    client = openai.OpenAI(api_key=KEY, base_url=stack.gateway.url + "/v2/router")
    text = f"reach me at {EMAIL} or +31 6 12345678"
    stream = client.chat.completions.create(
        model="openai/gpt-4o",
        messages=[{"role": "user", "content": text}],
        stream=True,
        extra_body={"guardrails": [{"id": "portico_pii_redaction", "execute_on": "input"}]},
    )
    pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
    assert "".join(pieces) == f"Echo from gpt-4o: {text}"
    sent = stack.upstream.requests[0]["body"]["messages"][0]["content"]
    assert EMAIL not in sent and "12345678" not in sent and "[PHONE_1]" in sent


def test_a_deployment_variant_guardrail_runs_in_the_same_stage(stack: Stack) -> None:
    from tests.deployments.conftest import create, new_key, simple

    key = new_key("guarded")
    create(stack, simple(key, guardrails=[{"id": "orq_pii_detection", "execute_on": "input"}]))
    refused = stack.post(
        "/v2/deployments/invoke", {"key": key, "messages": [{"role": "user", "content": f"card {CARD}"}]}
    )
    assert refused.status == 400, refused.body
    assert refused.json()["error"]["code"] == "orq_pii_detection" and refused.json()["code"] == "400"
    assert stack.upstream.requests == []
    allowed = stack.post("/v2/deployments/invoke", {"key": key, "messages": [{"role": "user", "content": "hi"}]})
    assert allowed.status == 200, allowed.body


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_cached_answer_is_checked_like_a_fresh_one(stack: Stack, stream: bool) -> None:
    text = f"the bomb question {stream}"
    cache = {"type": "exact_match", "ttl": 60}
    first = stack.post(ROUTER, {**_body(text), "cache": cache})
    assert first.status == 200 and len(stack.upstream.requests) == 1
    guarded = stack.post(ROUTER, {**_body(text, ("orq_harmful_moderation", "output"), stream=stream), "cache": cache})
    assert len(stack.upstream.requests) == 1, "served from the cache"
    if stream:
        assert [e["error"]["code"] for e in _events(guarded.body)] == ["orq_harmful_moderation"]
    else:
        assert guarded.status == 400 and guarded.json()["error"]["code"] == "orq_harmful_moderation"
    assert guarded.headers.get("x-portico-cache") in (None, "HIT")
