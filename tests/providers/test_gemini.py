"""The Gemini adapter: pure translation both ways on recorded wire-format fixtures, plus gateway end-to-end tests for
what the contract suite does not cover (refused and dropped parameters, history normalisation, thinking with tools)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from portico.config.schema import ProviderConfig
from portico.core.errors import RequestError, UnsupportedParameter, UpstreamHTTPError, UpstreamProtocolError
from portico.core.types import ChatRequest, ProviderCredentials
from portico.providers.gemini import GeminiProvider, gemini_schema, translate_request
from portico.providers.registry import load_adapters, providers_from_env
from portico.providers.transport import SSEReader, UpstreamEvent
from tests.providers.native_gateway import NativeGateway, native_gateway
from tests.upstreams import gemini as upstream

FIXTURES = Path(__file__).parents[1] / "fixtures" / "gemini"
REQUESTS = json.loads((FIXTURES / "requests.json").read_bytes())
WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
}


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def provider(**config: Any) -> GeminiProvider:
    return GeminiProvider("gemini", ProviderConfig.model_validate({"api_key": "g-key", **config}))


def translate(**body: Any) -> dict[str, Any]:
    return translate_request(body, "gemini-2.5-flash", "gemini")[0]


# --- request translation: golden cases (OpenAI body → the exact Gemini body), checked here and end to end ------------


@pytest.mark.parametrize("case", REQUESTS["cases"], ids=lambda c: c["name"])
def test_request_translation(case: dict[str, Any]) -> None:
    assert translate_request(case["body"], case["model"], "gemini") == (case["expected"], case["dropped"])


@pytest.mark.parametrize("case", REQUESTS["errors"], ids=lambda c: c["name"])
def test_what_gemini_cannot_take_is_refused_with_a_400_naming_it(case: dict[str, Any]) -> None:
    with pytest.raises(RequestError) as info:
        translate_request(case["body"], "gemini-2.5-flash", "gemini")
    assert (info.value.param, info.value.code, info.value.http_status) == (case["param"], case["kind"], 400)
    if isinstance(info.value, UnsupportedParameter):
        assert "'gemini'" in info.value.message


def test_schema_translation_survives_recursive_refs() -> None:
    tree = {
        "$defs": {"Node": {"type": "object", "properties": {"child": {"$ref": "#/$defs/Node"}}}},
        "$ref": "#/$defs/Node",
    }
    depth, node = 0, gemini_schema(tree)
    while "properties" in node:
        node, depth = node["properties"]["child"], depth + 1
    assert 5 < depth < 30


def test_build_request_url_headers_and_streaming() -> None:
    req = ChatRequest(model="gemini/x", body={"messages": [{"role": "user", "content": "hi"}]}, stream=True)
    built = provider(headers={"x-extra": "1"}).build_request(req, "models/gemini-2.5-flash")
    assert (
        built.url
        == "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    )
    assert built.headers["x-goog-api-key"] == "g-key" and built.headers["x-extra"] == "1"
    assert "Authorization" not in built.headers and built.framing == "sse"
    plain = ChatRequest(
        model="gemini/x",
        body={"messages": [{"role": "user", "content": "hi"}]},
        credentials=ProviderCredentials("byok", "http://proxy/v1"),
    )
    built = provider(api_version="v1alpha").build_request(plain, "tunedModels/my-model")
    assert built.url == "http://proxy/v1/tunedModels/my-model:generateContent"
    assert built.headers["x-goog-api-key"] == "byok"
    assert (
        provider(api_version="v1alpha")
        .build_request(ChatRequest(model="g/x", body={"messages": []}), "m")
        .url.endswith("/v1alpha/models/m:generateContent")
    )


# --- response translation ---------------------------------------------------------------------------------------


def test_thinking_and_parallel_calls_come_back_with_signatures_ids_and_usage() -> None:
    result = provider().parse_response(fixture("thinking_tool_call.json"), "gemini-2.5-flash")
    body = result.body
    assert body["id"] == "9hNqaPHcC4a0nvgPk7PDwAc" and body["model"] == "gemini-2.5-flash"
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    message = choice["message"]
    assert message["content"] is None
    assert message["reasoning"].startswith("**Looking up the weather**")
    first, second = message["tool_calls"]
    assert first == {
        "id": "call_9hNqaPHcC4a0nvgPk7PDwAc_0_0",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Paris","unit":"celsius"}'},
        "thought_signature": "CiQB0e2Kb0m7w2c9Yk1+3bqK2oV0TQ0u1nqR0ZqHk6bPz3u4EcAKYgHR7YpvnQ==",
    }
    assert second["id"] == "call_9hNqaPHcC4a0nvgPk7PDwAc_0_1" and "thought_signature" not in second
    assert body["usage"] == {
        "prompt_tokens": 71,
        "completion_tokens": 111,
        "total_tokens": 182,
        "prompt_tokens_details": {"cached_tokens": 32, "cache_creation_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 92},
    }
    assert result.usage.reasoning_tokens == 92


def test_a_parsed_model_turn_goes_back_to_gemini_unchanged() -> None:
    original = orjson.loads(fixture("thinking_tool_call.json"))["candidates"][0]["content"]
    message = provider().parse_response(fixture("thinking_tool_call.json"), "m").body["choices"][0]["message"]
    results = [{"role": "tool", "tool_call_id": c["id"], "content": "ok"} for c in reversed(message["tool_calls"])]
    payload = translate(messages=[{"role": "user", "content": "Weather and time in Paris?"}, message, *results])
    assert payload["contents"][1] == original
    assert [p["functionResponse"]["name"] for p in payload["contents"][2]["parts"]] == ["get_weather", "get_time"]


def test_signature_on_a_text_part_survives_the_round_trip() -> None:
    response = {
        "candidates": [
            {
                "content": {"parts": [{"text": "Hi", "thoughtSignature": "c2ln"}], "role": "model"},
                "finishReason": "STOP",
            }
        ],
        "responseId": "r",
    }
    message = provider().parse_response(orjson.dumps(response), "m").body["choices"][0]["message"]
    assert message == {"role": "assistant", "content": "Hi", "reasoning_signature": "c2ln"}
    payload = translate(messages=[{"role": "user", "content": "a"}, message, {"role": "user", "content": "b"}])
    assert payload["contents"][1] == {"role": "model", "parts": [{"text": "Hi", "thoughtSignature": "c2ln"}]}


def test_candidates_logprobs_and_finish_reasons() -> None:
    body = provider().parse_response(fixture("text_two_candidates_logprobs.json"), "gemini-2.0-flash").body
    first, second = body["choices"]
    assert (first["message"]["content"], first["finish_reason"]) == ("Paris", "stop")
    assert (second["index"], second["finish_reason"]) == (1, "length")
    assert first["logprobs"]["content"] == [
        {
            "token": "Paris",
            "logprob": -0.0123,
            "bytes": list(b"Paris"),
            "top_logprobs": [
                {"token": "Paris", "logprob": -0.0123, "bytes": list(b"Paris")},
                {"token": "paris", "logprob": -4.61, "bytes": list(b"paris")},
            ],
        }
    ]
    assert second["logprobs"] is None
    assert body["usage"]["total_tokens"] == 16


def test_blocked_prompt_is_a_content_filter_finish_and_empty_answers_are_protocol_errors() -> None:
    body = provider().parse_response(fixture("blocked_prompt.json"), "m").body
    assert body["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": None},
            "finish_reason": "content_filter",
            "logprobs": None,
        }
    ]
    with pytest.raises(UpstreamProtocolError):
        provider().parse_response(b'{"modelVersion": "m"}', "m")
    safety = {"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": "PROHIBITED_CONTENT"}]}
    assert provider().parse_response(orjson.dumps(safety), "m").body["choices"][0]["finish_reason"] == "content_filter"


def _stream(name: str) -> tuple[list[dict[str, Any]], Any]:
    parser = provider().stream_parser(ChatRequest(model="g/m", body={}, stream=True), "gemini-2.5-flash")
    reader = SSEReader()
    chunks: list[dict[str, Any]] = []
    raw = fixture(name)
    for start in range(0, len(raw), 37):  # split mid-frame, like network reads
        for event in reader.feed(raw[start : start + 37]):
            chunks.extend(c.data for c in parser.feed(event))
    return chunks, parser


def test_text_stream_is_translated_as_it_arrives_and_ends_with_usage() -> None:
    chunks, parser = _stream("stream_text.sse")
    tail = [c.data for c in parser.close()]
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[0] == {"role": "assistant", "content": "The capital"}
    assert "".join(d.get("content", "") for d in deltas) == "The capital of France is Paris."
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "stop"}
    assert {c["id"] for c in chunks + tail} == {"A1VqaMC0LfCunvgPsbGS0Qw"}
    assert tail[0]["choices"] == [] and tail[0]["usage"]["completion_tokens"] == 33
    assert tail[0]["usage"]["completion_tokens_details"] == {"reasoning_tokens": 26}


def test_tool_call_stream_carries_reasoning_signature_and_finish() -> None:
    chunks, parser = _stream("stream_tool_call.sse")
    parser.close()
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[0]["reasoning"].startswith("**Planning the lookup**") and deltas[0]["role"] == "assistant"
    assert deltas[1]["tool_calls"] == [
        {
            "index": 0,
            "id": "call_vlZqaM6MJ4Sr1dkP0a6X2Ac_0_0",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
            "thought_signature": "CpwCAdHtim9sig==",
        }
    ]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_truncated_and_failing_streams_raise() -> None:
    parser = provider().stream_parser(ChatRequest(model="g/m", body={}, stream=True), "m")
    parser.feed(UpstreamEvent(b'{"candidates": [{"content": {"parts": [{"text": "Hi"}]}, "index": 0}]}'))
    with pytest.raises(UpstreamProtocolError, match="before it finished"):
        parser.close()
    with pytest.raises(UpstreamHTTPError, match="overloaded") as info:
        parser.feed(UpstreamEvent(b'{"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}}'))
    assert info.value.http_status == 502 and info.value.retryable
    with pytest.raises(UpstreamProtocolError):
        parser.feed(UpstreamEvent(b"{not json"))
    with pytest.raises(UpstreamProtocolError):
        provider().stream_parser(ChatRequest(model="g/m", body={}), "m").close()


# --- errors and registration ------------------------------------------------------------------------------------


def test_error_bodies_map_to_statuses_messages_and_retry_delays() -> None:
    p = provider()
    quota = p.map_error(429, fixture("error_429.json"), {})
    assert isinstance(quota, UpstreamHTTPError)
    assert (quota.http_status, quota.retry_after, quota.code, quota.retryable) == (
        429,
        17.0,
        "RESOURCE_EXHAUSTED",
        True,
    )
    assert quota.message.startswith("You exceeded your current quota")
    assert p.map_error(429, fixture("error_429.json"), {"retry-after": "3"}).retry_after == 3.0
    bad_key = p.map_error(400, fixture("error_400_api_key.json"), {})
    assert (bad_key.http_status, bad_key.message) == (401, "API key not valid. Please pass a valid API key.")
    denied = p.map_error(403, b'{"error": {"code": 403, "message": "denied", "status": "PERMISSION_DENIED"}}', {})
    assert (denied.http_status, denied.code) == (403, "PERMISSION_DENIED")
    array = p.map_error(
        404, b'[{"error": {"code": 404, "message": "models/x is not found", "status": "NOT_FOUND"}}]', {}
    )
    assert (array.http_status, array.message) == (404, "models/x is not found")
    for status in (500, 503):
        server = p.map_error(status, b'{"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}}', {})
        assert (server.http_status, server.retryable) == (502, True)
    assert p.map_error(502, b"<html>bad gateway</html>", {}).message == "<html>bad gateway</html>"


def test_registered_under_google_and_gemini_with_their_key_variable() -> None:
    adapters = load_adapters()
    assert adapters["gemini"].env_key == adapters["google"].env_key == "GEMINI_API_KEY"
    assert adapters["gemini"].factory is GeminiProvider
    configs = providers_from_env(adapters, {"GEMINI_API_KEY": "k"})
    assert configs["gemini"].api_key == "k" and configs["google"].api_key == "k"
    assert GeminiProvider("g", ProviderConfig()).base_url == "https://generativelanguage.googleapis.com"


# --- through the gateway ----------------------------------------------------------------------------------------


Gateway = NativeGateway


@pytest.fixture(scope="module")
def gw() -> Iterator[Gateway]:
    with native_gateway(upstream.install, "gemini", "g-key") as gateway:
        yield gateway


@pytest.fixture
def g(gw: Gateway) -> Iterator[Gateway]:
    gw.upstream.state.reset()
    yield gw


MODEL = "gemini/gemini-2.5-flash"


@pytest.mark.parametrize("case", REQUESTS["cases"], ids=lambda c: c["name"])
def test_gateway_sends_the_golden_body_and_the_strict_upstream_accepts_it(g: Gateway, case: dict[str, Any]) -> None:
    reply = g.post({"model": f"gemini/{case['model']}", **case["body"]})
    assert reply.status == 200, reply.body
    assert g.sent() == case["expected"]
    assert reply.headers.get("x-portico-dropped-params", "") == ",".join(case["dropped"])
    assert reply.json()["choices"][0]["message"]["content"] or reply.json()["choices"][0]["message"]["tool_calls"]


@pytest.mark.parametrize("case", REQUESTS["errors"], ids=lambda c: c["name"])
def test_gateway_refuses_before_calling_gemini(g: Gateway, case: dict[str, Any]) -> None:
    reply = g.post({"model": MODEL, **case["body"]})
    assert reply.status == 400
    error = reply.json()["error"]
    assert (error["param"], error["code"]) == (case["param"], case["kind"])
    if case["kind"] == "unsupported_parameter":
        assert "'gemini'" in error["message"]
    assert g.upstream.state.requests == []


def test_gateway_multi_turn_thinking_with_tools_sends_signatures_back(g: Gateway) -> None:
    thinking = {"type": "enabled", "budget_tokens": 1024}
    first = g.post(
        {
            "model": MODEL,
            "messages": [{"role": "user", "content": "Weather?"}],
            "tools": [WEATHER],
            "thinking": thinking,
        }
    )
    message = first.json()["choices"][0]["message"]
    assert message["reasoning"] == "Let me think." and message["reasoning_signature"] == "sig-1"
    assert first.json()["usage"]["completion_tokens_details"] == {"reasoning_tokens": 3}
    tool_call = message["tool_calls"][0]
    history = [
        {"role": "user", "content": "Weather?"},
        message,
        {"role": "tool", "tool_call_id": tool_call["id"], "content": "Rain"},
    ]
    second = g.post({"model": MODEL, "messages": history, "tools": [WEATHER], "thinking": thinking})
    assert second.status == 200, second.body
    assert second.json()["choices"][0]["message"]["content"] == "Tool result: Rain"
    model_turn = g.sent()["contents"][1]
    assert model_turn["parts"][0] == {"text": "Let me think.", "thought": True, "thoughtSignature": "sig-1"}
    assert model_turn["parts"][1] == {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}


def test_gateway_streams_reasoning_and_hides_usage_unless_asked(g: Gateway) -> None:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Go"}],
        "stream": True,
        "thinking": {"type": "enabled", "budget_tokens": 64},
    }
    reply = g.post(body)
    events = [json.loads(line[6:]) for line in reply.body.decode().split("\n") if line.startswith("data: {")]
    assert events[0]["choices"][0]["delta"]["reasoning"] == "Let me think."
    assert (
        "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"])
        == "Echo from gemini-2.5-flash: Go"
    )
    assert all("usage" not in e for e in events)
    assert g.upstream.state.requests[-1]["path"] == "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    assert g.upstream.state.requests[-1]["query"] == {"alt": "sse"}
