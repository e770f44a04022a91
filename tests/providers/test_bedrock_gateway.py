"""Bedrock end to end beyond the contract: openai SDK → gateway → the mock Converse upstream (which verifies SigV4)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.conftest import KEY, Stack
from tests.gateway_server import GatewayThread
from tests.upstreams import bedrock as upstream
from tests.upstreams.server import UpstreamThread

MODEL = "anthropic.claude-3-5-sonnet-20241022-v2:0"
ARN = f"arn:aws:bedrock:{upstream.REGION}:123456789012:inference-profile/us.{MODEL}"
KEYS = {"aws_access_key_id": upstream.ACCESS_KEY, "aws_secret_access_key": upstream.SECRET_KEY}


@pytest.fixture(scope="module")
def bedrock_stack() -> Iterator[Stack]:
    with UpstreamThread([upstream.install]) as thread:
        signed = {"type": "bedrock", "base_url": thread.url, "region": upstream.REGION, **KEYS}
        settings = {
            "auth": {"keys": [KEY]},
            "providers": {
                "bedrock": signed,
                "badsig": {**signed, "aws_secret_access_key": "not-the-secret"},
                "apikey": {
                    "type": "bedrock",
                    "base_url": thread.url,
                    "region": "eu-west-1",
                    "api_key": upstream.API_KEY,
                },
            },
            "logging": {"request_log": False},
        }
        with GatewayThread(settings) as gateway:
            yield Stack(gateway, thread)


@pytest.fixture
def stack(bedrock_stack: Stack) -> Iterator[Stack]:
    bedrock_stack.upstream.reset()
    yield bedrock_stack
    bedrock_stack.upstream.reset()


@pytest.fixture
def client(stack: Stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.gateway.url + "/v1", api_key=KEY, max_retries=0)


def ask(**body: Any) -> dict[str, Any]:
    return {"model": f"bedrock/{MODEL}", "messages": [{"role": "user", "content": "Hello"}], **body}


def test_inference_profile_arns_are_encoded_and_signed(client: openai.OpenAI, stack: Stack) -> None:
    reply = client.chat.completions.create(model=f"bedrock/{ARN}", messages=[{"role": "user", "content": "Hi"}])
    assert reply.choices[0].message.content == f"Echo from {ARN}: Hi"
    assert stack.upstream.requests[-1]["model"] == ARN  # the mock verified the signature over the %2F-encoded path


def test_a_wrong_signature_is_an_authentication_error(client: openai.OpenAI, stack: Stack) -> None:
    with pytest.raises(openai.AuthenticationError, match="signature"):
        client.chat.completions.create(model=f"badsig/{MODEL}", messages=[{"role": "user", "content": "Hi"}])
    assert stack.upstream.requests[-1]["headers"]["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=")


def test_bedrock_api_key_provider(client: openai.OpenAI, stack: Stack) -> None:
    reply = client.chat.completions.create(model=f"apikey/{MODEL}", messages=[{"role": "user", "content": "Hi"}])
    assert reply.choices[0].message.content == f"Echo from {MODEL}: Hi"
    assert stack.upstream.requests[-1]["headers"]["Authorization"] == f"Bearer {upstream.API_KEY}"


def test_streamed_reasoning_arrives_as_deltas(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model=f"bedrock/{MODEL}",
            messages=[{"role": "user", "content": "Think"}],
            reasoning_effort="low",
            stream=True,
        )
    )
    extras = [c.choices[0].delta.model_extra or {} for c in chunks if c.choices]
    assert "".join(e.get("reasoning") or "" for e in extras) == "Let me think."
    assert [e["reasoning_signature"] for e in extras if "reasoning_signature" in e] == ["sig-1"]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == f"Echo from {MODEL}: Think"
    assert all(c.usage is None for c in chunks)  # the client did not ask for usage


@pytest.mark.parametrize("stream", [False, True])
def test_json_mode_is_emulated_with_a_forced_tool(client: openai.OpenAI, stream: bool) -> None:
    fmt: Any = {"type": "json_object"}
    messages: Any = [{"role": "user", "content": "JSON please"}]
    if stream:
        chunks = list(
            client.chat.completions.create(
                model=f"bedrock/{MODEL}", messages=messages, response_format=fmt, stream=True
            )
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        assert not any(c.choices[0].delta.tool_calls for c in chunks if c.choices)
    else:
        reply = client.chat.completions.create(model=f"bedrock/{MODEL}", messages=messages, response_format=fmt)
        text, finish = reply.choices[0].message.content or "", [reply.choices[0].finish_reason]
        assert not reply.choices[0].message.tool_calls
    assert json.loads(text) == {"city": "Paris"} and finish == ["stop"]


def test_throttling_at_stream_start_is_a_429(client: openai.OpenAI, stack: Stack) -> None:
    stack.upstream.set_mode(MODEL, "throttle_stream")
    with pytest.raises(openai.RateLimitError, match="Too many tokens"):
        list(client.chat.completions.create(**ask(stream=True)))


def test_cache_points_and_cached_usage(client: openai.OpenAI, stack: Stack) -> None:
    content: Any = [{"type": "text", "text": "Long shared prefix", "cache_control": {"type": "ephemeral"}}]
    reply = client.chat.completions.create(model=f"bedrock/{MODEL}", messages=[{"role": "user", "content": content}])
    sent = stack.upstream.requests[-1]["body"]["messages"][0]["content"]
    assert sent == [{"text": "Long shared prefix"}, {"cachePoint": {"type": "default"}}]
    assert reply.usage is not None and reply.usage.prompt_tokens_details is not None
    assert reply.usage.prompt_tokens_details.cached_tokens == 3
    assert reply.usage.prompt_tokens == 3 + 3 + 2  # input words + cache read + cache write


def test_unsupported_parameters_are_refused_or_dropped_and_listed(stack: Stack) -> None:
    url_image = [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]
    for body, param in [
        ({"n": 2}, "n"),
        ({"messages": [{"role": "user", "content": url_image}]}, "messages[0].content[0]"),
    ]:
        answer = stack.post("/v1/chat/completions", ask(**body))
        assert answer.status == 400, answer.body
        error = answer.json()["error"]
        assert (error["code"], error["param"]) == ("unsupported_parameter", param)
    assert stack.upstream.requests == []
    answer = stack.post("/v1/chat/completions", ask(seed=3, presence_penalty=0.5, temperature=0.1))
    assert answer.status == 200
    assert answer.headers["x-portico-dropped-params"] == "presence_penalty,seed"
    assert stack.upstream.requests[-1]["body"]["inferenceConfig"] == {"temperature": 0.1}


def test_upstream_validation_errors_pass_through_as_400(stack: Stack) -> None:
    stack.upstream.fail_with(400, "A conversation must start with a user message.")
    answer = stack.post("/v1/chat/completions", ask())
    assert answer.status == 400
    assert answer.json()["error"]["message"] == "A conversation must start with a user message."
    assert answer.json()["error"]["code"] == "ValidationException"
