"""The Cohere v2 adapter: pure translation both ways on recorded wire-format fixtures, plus gateway end-to-end tests for
what the contract suite does not cover (refused and dropped parameters, named tool choice, history shapes)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from portico.config.schema import ProviderConfig
from portico.core.errors import UnsupportedParameter, UpstreamHTTPError, UpstreamProtocolError
from portico.core.types import ChatRequest, ProviderCredentials
from portico.providers.cohere import CohereProvider, translate_request
from portico.providers.registry import load_adapters
from portico.providers.transport import SSEReader, UpstreamEvent
from tests.providers.native_gateway import NativeGateway, native_gateway
from tests.upstreams import cohere as upstream

FIXTURES = Path(__file__).parents[1] / "fixtures" / "cohere"
REQUESTS = json.loads((FIXTURES / "requests.json").read_bytes())
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        "strict": True,
    },
}
CLOCK = {"type": "function", "function": {"name": "get_time"}}


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def provider(**config: Any) -> CohereProvider:
    return CohereProvider("cohere", ProviderConfig.model_validate({"api_key": "co-key", **config}))


def translate(**body: Any) -> dict[str, Any]:
    return translate_request(body, "command-a-03-2025", "cohere")[0]


# --- request translation: golden cases (OpenAI body → the exact Cohere body), checked here and end to end ------------


@pytest.mark.parametrize("case", REQUESTS["cases"], ids=lambda c: c["name"])
def test_request_translation(case: dict[str, Any]) -> None:
    assert translate_request(case["body"], case["model"], "cohere") == (case["expected"], case["dropped"])


@pytest.mark.parametrize("case", REQUESTS["errors"], ids=lambda c: c["name"])
def test_what_cohere_cannot_take_is_refused_with_a_400_naming_it(case: dict[str, Any]) -> None:
    with pytest.raises(UnsupportedParameter) as info:
        translate_request(case["body"], "command-a-03-2025", "cohere")
    assert (info.value.param, info.value.http_status) == (case["param"], 400) and "'cohere'" in info.value.message


def test_build_request_url_headers_and_stream_flag() -> None:
    req = ChatRequest(model="cohere/x", body={"messages": [{"role": "user", "content": "hi"}]}, stream=True)
    built = provider().build_request(req, "command-r7b-12-2024")
    assert built.url == "https://api.cohere.com/v2/chat"
    assert built.headers["Authorization"] == "Bearer co-key" and built.headers["Accept"] == "text/event-stream"
    assert json.loads(built.body)["stream"] is True and built.framing == "sse"
    byok = ChatRequest(
        model="cohere/x", body={"messages": []}, credentials=ProviderCredentials("mine", "http://proxy/v2/")
    )
    built = provider().build_request(byok, "m")
    assert built.url == "http://proxy/v2/chat" and built.headers["Authorization"] == "Bearer mine"
    assert json.loads(built.body)["stream"] is False


# --- response translation ----------------------------------------------------------------------------------------


def test_text_answer_ids_and_usage() -> None:
    body = provider().parse_response(fixture("chat_text.json"), "command-a-03-2025").body
    assert body["id"] == "c14c80c3-18eb-4519-9460-6c92edd8cfb4" and body["model"] == "command-a-03-2025"
    assert body["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "LLMs stand for Large Language Models."},
            "finish_reason": "stop",
            "logprobs": None,
        }
    ]
    assert body["usage"] == {
        "prompt_tokens": 215,
        "completion_tokens": 12,
        "total_tokens": 227,
        "prompt_tokens_details": {"cached_tokens": 128, "cache_creation_tokens": 0},
    }


def test_tool_plan_is_content_and_tool_calls_keep_cohere_ids() -> None:
    choice = provider().parse_response(fixture("chat_tool_call.json"), "m").body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    message = choice["message"]
    assert message["content"] == "I will look up the weather in Paris and then answer."
    assert [c["id"] for c in message["tool_calls"]] == ["get_weather_5zm2rmpyvk4h", "get_time_x3q8kf0d2n1p"]
    assert message["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": '{"location":"Paris"}'}
    payload = translate(messages=[{"role": "user", "content": "go"}, message])
    assert payload["messages"][1]["tool_plan"] == message["content"]


def test_thinking_logprobs_and_finish_reasons() -> None:
    choice = provider().parse_response(fixture("chat_thinking_logprobs.json"), "m").body["choices"][0]
    assert choice["message"] == {
        "role": "assistant",
        "content": "Paris.",
        "reasoning": "The user wants a one-word answer.",
    }
    assert choice["finish_reason"] == "length"
    assert choice["logprobs"]["content"] == [
        {"token": "Paris", "logprob": -0.015, "bytes": list(b"Paris"), "top_logprobs": []},
        {"token": ".", "logprob": -0.25, "bytes": [46], "top_logprobs": []},
    ]
    for upstream_reason, reason in [
        ("COMPLETE", "stop"),
        ("STOP_SEQUENCE", "stop"),
        ("ERROR", "error"),
        ("TIMEOUT", "error"),
    ]:
        raw = json.dumps({"id": "x", "finish_reason": upstream_reason, "message": {"role": "assistant", "content": []}})
        assert provider().parse_response(raw.encode(), "m").body["choices"][0]["finish_reason"] == reason


def _stream(name: str) -> tuple[list[dict[str, Any]], Any]:
    parser = provider().stream_parser(ChatRequest(model="cohere/m", body={}, stream=True), "command-a")
    reader = SSEReader()
    chunks: list[dict[str, Any]] = []
    raw = fixture(name)
    for start in range(0, len(raw), 50):
        for event in reader.feed(raw[start : start + 50]):
            chunks.extend(c.data for c in parser.feed(event))
    chunks.extend(c.data for c in parser.close())
    return chunks, parser


def test_text_stream_with_thinking_and_logprobs() -> None:
    chunks, _ = _stream("stream_thinking_text.sse")
    assert {c["id"] for c in chunks} == {"29f14a5a-11de-4cae-9800-25e4747408ea"}
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert "".join(d.get("reasoning", "") for d in deltas) == "A short answer."
    assert "".join(d.get("content", "") for d in deltas) == "Hello there!"
    with_logprobs = [c["choices"][0]["logprobs"] for c in chunks if c["choices"] and "logprobs" in c["choices"][0]]
    assert with_logprobs[1]["content"][0]["logprob"] == pytest.approx(-0.3)
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 214


def test_tool_call_stream() -> None:
    chunks, _ = _stream("stream_tool_call.sse")
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert "".join(d.get("content", "") for d in deltas) == "I will check the weather."
    calls = [tc for d in deltas for tc in d.get("tool_calls", [])]
    assert calls[0] == {
        "index": 0,
        "function": {"arguments": "", "name": "get_weather"},
        "id": "get_weather_nsz5zm3w56q3",
        "type": "function",
    }
    assert json.loads("".join(tc["function"]["arguments"] for tc in calls)) == {"location": "Toronto"}
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"


def test_truncated_and_failing_streams_raise() -> None:
    parser = provider().stream_parser(ChatRequest(model="c/m", body={}, stream=True), "m")
    parser.feed(UpstreamEvent(b'{"type": "message-start", "id": "x"}', "message-start"))
    with pytest.raises(UpstreamProtocolError, match="before it finished"):
        parser.close()
    with pytest.raises(UpstreamProtocolError, match="boom"):
        parser.feed(UpstreamEvent(b'{"type": "message-end", "delta": {"error": "boom", "finish_reason": "ERROR"}}'))
    with pytest.raises(UpstreamProtocolError):
        parser.feed(UpstreamEvent(b"{oops"))


# --- errors and registration ------------------------------------------------------------------------------------


def test_error_bodies_map_to_statuses_and_messages() -> None:
    p = provider()
    limited = p.map_error(429, fixture("error_429.json"), {"retry-after": "9"})
    assert isinstance(limited, UpstreamHTTPError)
    assert (limited.http_status, limited.retry_after, limited.retryable) == (429, 9.0, True)
    assert limited.message.startswith("You are using a Trial key")
    assert p.map_error(400, b'{"message": "invalid request: p must be between 0.01 and 0.99"}', {}).http_status == 400
    assert p.map_error(401, b'{"message": "invalid api token"}', {}).type == "authentication_error"
    assert p.map_error(498, b'{"message": "blocked token"}', {}).http_status == 401
    assert (
        p.map_error(500, b'{"message": "internal server error"}', {}).http_status,
        p.map_error(503, b"", {}).retryable,
    ) == (502, True)


def test_registered_with_its_key_variable() -> None:
    adapter = load_adapters()["cohere"]
    assert adapter.factory is CohereProvider and adapter.env_key == "COHERE_API_KEY"


# --- through the gateway ----------------------------------------------------------------------------------------


Gateway = NativeGateway


@pytest.fixture(scope="module")
def gw() -> Iterator[Gateway]:
    with native_gateway(upstream.install, "cohere", "co-key") as gateway:
        yield gateway


@pytest.fixture
def c(gw: Gateway) -> Iterator[Gateway]:
    gw.upstream.state.reset()
    yield gw


MODEL = "cohere/command-a-03-2025"


@pytest.mark.parametrize("case", REQUESTS["cases"], ids=lambda c: c["name"])
def test_gateway_sends_the_golden_body_and_the_strict_upstream_accepts_it(c: Gateway, case: dict[str, Any]) -> None:
    reply = c.post({"model": f"cohere/{case['model']}", **case["body"]})
    assert reply.status == 200, reply.body
    assert c.sent() == {**case["expected"], "stream": False}
    assert reply.headers.get("x-portico-dropped-params", "") == ",".join(case["dropped"])


@pytest.mark.parametrize("case", REQUESTS["errors"], ids=lambda c: c["name"])
def test_gateway_refuses_before_calling_cohere(c: Gateway, case: dict[str, Any]) -> None:
    reply = c.post({"model": MODEL, **case["body"]})
    assert reply.status == 400
    error = reply.json()["error"]
    assert (error["param"], error["code"]) == (case["param"], "unsupported_parameter") and "'cohere'" in error[
        "message"
    ]
    assert c.upstream.state.requests == []


def test_gateway_forces_a_named_tool_by_offering_only_it(c: Gateway) -> None:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Time?"}],
        "tools": [WEATHER, CLOCK],
        "tool_choice": {"type": "function", "function": {"name": "get_time"}},
    }
    reply = c.post(body)
    assert reply.status == 200, reply.body
    assert c.sent()["tool_choice"] == "REQUIRED" and [t["function"]["name"] for t in c.sent()["tools"]] == ["get_time"]
    message = reply.json()["choices"][0]["message"]
    assert message["tool_calls"][0]["function"]["name"] == "get_time"
    assert message["content"] == "I will call get_time."


def test_gateway_round_trips_reasoning_and_tool_plans(c: Gateway) -> None:
    thinking = {"type": "enabled", "budget_tokens": 500}
    first = c.post(
        {
            "model": MODEL,
            "messages": [{"role": "user", "content": "Weather?"}],
            "tools": [WEATHER],
            "thinking": thinking,
        }
    )
    message = first.json()["choices"][0]["message"]
    assert message["reasoning"] == "Let me think." and first.json()["choices"][0]["finish_reason"] == "tool_calls"
    history = [
        {"role": "user", "content": "Weather?"},
        message,
        {"role": "tool", "tool_call_id": message["tool_calls"][0]["id"], "content": "Rain"},
    ]
    second = c.post({"model": MODEL, "messages": history, "tools": [WEATHER], "thinking": thinking})
    assert second.status == 200, second.body
    assert c.sent()["messages"][1] == {
        "role": "assistant",
        "content": [{"type": "thinking", "thinking": "Let me think."}],
        "tool_calls": message["tool_calls"],
        "tool_plan": "I will call get_weather.",
    }
    assert second.json()["choices"][0]["message"]["content"] == "Tool result: Rain"
