"""The Anthropic Messages adapter: pure translation both ways on wire-format fixtures, plus gateway end-to-end tests
(the real `openai` SDK and raw HTTP → Portico → the strict mock) for what the contract suite does not cover:
golden bodies, refused and dropped parameters, caching, multi-turn thinking with tools, JSON mode, errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from portico.config.schema import ProviderConfig
from portico.core.errors import RequestError, UnsupportedParameter, UpstreamHTTPError, UpstreamProtocolError
from portico.core.types import ChatRequest, ProviderCredentials
from portico.providers.anthropic import AnthropicProvider, translate_request
from portico.providers.registry import load_adapters
from portico.providers.transport import SSEReader, UpstreamEvent
from tests.providers.native_gateway import NativeGateway, native_gateway
from tests.upstreams import anthropic as upstream

FIXTURES = Path(__file__).parents[1] / "fixtures" / "anthropic"
REQUESTS = json.loads((FIXTURES / "requests.json").read_bytes())
ERRORS = json.loads((FIXTURES / "errors.json").read_bytes())
MODEL = "claude-sonnet-4-5"
HELLO = [{"role": "user", "content": "hello"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def provider(**config: Any) -> AnthropicProvider:
    return AnthropicProvider("anthropic", ProviderConfig.model_validate({"api_key": "sk-ant-key", **config}))


def translate(**body: Any) -> dict[str, Any]:
    return translate_request(body, MODEL, "anthropic")[0]


# --- request translation: golden cases (OpenAI body → the exact Messages body), checked here and end to end --------


@pytest.mark.parametrize("case", REQUESTS["cases"], ids=lambda c: c["name"])
def test_request_translation(case: dict[str, Any]) -> None:
    assert translate_request(case["body"], case["model"], "anthropic") == (case["expected"], case["dropped"])


@pytest.mark.parametrize("case", REQUESTS["errors"], ids=lambda c: c["name"])
def test_what_anthropic_cannot_take_is_refused_with_a_400_naming_it(case: dict[str, Any]) -> None:
    with pytest.raises(UnsupportedParameter) as info:
        translate_request(case["body"], MODEL, "anthropic")
    assert (info.value.param, info.value.http_status) == (case["param"], 400) and "'anthropic'" in info.value.message


def test_tool_arguments_that_are_not_a_json_object_are_a_400_naming_them() -> None:
    call = {"id": "toolu_1", "type": "function", "function": {"name": "f", "arguments": "{not json"}}
    messages = [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [call]}]
    with pytest.raises(RequestError) as info:
        translate(messages=messages, tools=[WEATHER])
    assert info.value.param == "messages[1].tool_calls[0].function.arguments"
    assert (info.value.code, info.value.http_status) == ("invalid_tool_arguments", 400)


def test_foreign_tool_ids_map_the_same_way_for_calls_and_results() -> None:
    call = {"id": "call 7/ü", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    messages = [
        {"role": "user", "content": "x"},
        {"role": "assistant", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call 7/ü", "content": "ok"},
    ]
    turns = translate(messages=messages, tools=[WEATHER])["messages"]
    use, result = turns[1]["content"][0], turns[2]["content"][0]
    assert use["id"] == result["tool_use_id"] and upstream.TOOL_ID.match(use["id"])
    other = translate(messages=[*messages[:2], {**messages[2], "tool_call_id": "call 7/u"}], tools=[WEATHER])
    assert other["messages"][2]["content"][0]["tool_use_id"] != use["id"]


def test_build_request_url_headers_and_stream_flag() -> None:
    req = ChatRequest(model="anthropic/x", body={"messages": [{"role": "user", "content": "hi"}]}, stream=True)
    built = provider(headers={"anthropic-beta": "context-1m-2025-08-07"}).build_request(req, MODEL)
    assert built.url == "https://api.anthropic.com/v1/messages" and built.framing == "sse"
    assert built.headers["x-api-key"] == "sk-ant-key" and built.headers["anthropic-version"] == "2023-06-01"
    assert built.headers["anthropic-beta"] == "context-1m-2025-08-07" and "Authorization" not in built.headers
    assert json.loads(built.body)["stream"] is True
    byok = ChatRequest(
        model="anthropic/x", body={"messages": []}, credentials=ProviderCredentials("mine", "http://proxy/v1/")
    )
    built = provider().build_request(byok, "m")
    assert built.url == "http://proxy/v1/messages" and built.headers["x-api-key"] == "mine"
    assert "stream" not in json.loads(built.body)
    plain = provider(base_url="http://127.0.0.1:9", default_max_tokens=1234)
    built = plain.build_request(ChatRequest(model="a/m", body={"messages": []}), "m")
    assert built.url == "http://127.0.0.1:9/v1/messages" and json.loads(built.body)["max_tokens"] == 1234


# --- response translation ----------------------------------------------------------------------------------------


def test_text_answer_keeps_the_message_id_and_counts_cache_tokens_as_prompt() -> None:
    body = provider().parse_response(fixture("message_text.json"), MODEL).body
    assert body["id"] == "msg_013Zva2CMHLNnXjNJJKqJ2EF" and body["model"] == MODEL
    assert body["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hi! My name is Claude. How can I help?"},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    assert body["usage"] == {
        "prompt_tokens": 21 + 188 + 1024,
        "completion_tokens": 14,
        "total_tokens": 21 + 188 + 1024 + 14,
        "prompt_tokens_details": {"cached_tokens": 1024, "cache_creation_tokens": 188},
    }


def test_tool_use_becomes_tool_calls_with_anthropic_ids() -> None:
    choice = provider().parse_response(fixture("message_tool_use.json"), MODEL).body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    message = choice["message"]
    assert message["content"] == "I'll check the current weather in San Francisco for you."
    assert message["tool_calls"] == [
        {
            "id": "toolu_01A09q90qw90lq917835lq9",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"location":"San Francisco, CA","unit":"celsius"}'},
        },
        {
            "id": "toolu_01B7x2kq0pd4mW3yZ8hT6nRs",
            "type": "function",
            "function": {"name": "get_time", "arguments": "{}"},
        },
    ]


def test_thinking_and_redacted_thinking_round_trip_into_history() -> None:
    choice = provider().parse_response(fixture("message_thinking.json"), MODEL).body["choices"][0]
    message = choice["message"]
    assert choice["finish_reason"] == "length"
    assert message["reasoning"] == "Let me analyze this step by step..."
    assert message["reasoning_signature"].startswith("WaUjzkypQ2mUEVM36O2TxuC06KN8")
    assert len(message["redacted_reasoning"].split(" ")) == 2
    turn = translate(messages=[{"role": "user", "content": "q"}, message, {"role": "user", "content": "more"}])
    blocks = turn["messages"][1]["content"]
    assert [b["type"] for b in blocks] == ["thinking", "redacted_thinking", "redacted_thinking", "text"]
    original = json.loads(fixture("message_thinking.json"))["content"]
    assert blocks == original


def test_unsigned_reasoning_from_other_providers_is_not_sent_back() -> None:
    message = {"role": "assistant", "content": "A.", "reasoning": "unsigned thoughts"}
    turns = translate(messages=[{"role": "user", "content": "q"}, message, {"role": "user", "content": "more"}])
    assert turns["messages"][1]["content"] == [{"type": "text", "text": "A."}]


def test_json_mode_tool_answer_is_the_message_text() -> None:
    choice = provider().parse_response(fixture("message_json_tool.json"), MODEL).body["choices"][0]
    assert choice["finish_reason"] == "stop" and "tool_calls" not in choice["message"]
    assert json.loads(choice["message"]["content"]) == {"city": "Paris", "temperature_c": 21}


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("something_new", "stop"),
    ],
)
def test_finish_reasons(stop_reason: str, finish: str) -> None:
    raw = {"id": "msg_1", "type": "message", "content": [{"type": "text", "text": "x"}], "stop_reason": stop_reason}
    body = provider().parse_response(json.dumps(raw).encode(), MODEL).body
    assert body["choices"][0]["finish_reason"] == finish


def test_a_body_that_is_not_a_message_is_a_protocol_error() -> None:
    with pytest.raises(UpstreamProtocolError):
        provider().parse_response(b'{"type": "message"}', MODEL)
    with pytest.raises(UpstreamProtocolError):
        provider().parse_response(b"<html>", MODEL)


def _stream(name: str, size: int = 40) -> list[dict[str, Any]]:
    parser = provider().stream_parser(ChatRequest(model="anthropic/m", body={}, stream=True), MODEL)
    reader = SSEReader()
    chunks: list[dict[str, Any]] = []
    raw = fixture(name)
    for start in range(0, len(raw), size):
        for event in reader.feed(raw[start : start + size]):
            chunks.extend(c.data for c in parser.feed(event))
    chunks.extend(c.data for c in parser.close())
    return chunks


def test_text_stream_with_ping_and_usage() -> None:
    chunks = _stream("stream_text.sse")
    assert {c["id"] for c in chunks} == {"msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY"}
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert "".join(d.get("content", "") for d in deltas) == "Hello!"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == {
        "prompt_tokens": 25 + 2048,
        "completion_tokens": 15,
        "total_tokens": 25 + 2048 + 15,
        "prompt_tokens_details": {"cached_tokens": 2048, "cache_creation_tokens": 0},
    }


def test_thinking_and_tool_use_stream() -> None:
    chunks = _stream("stream_thinking_tool_use.sse", size=64)
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert "".join(d.get("reasoning", "") for d in deltas) == "The user wants the weather in San Francisco."
    assert "".join(d.get("reasoning_signature", "") for d in deltas).startswith("EqQBCgIYAhIM1gbcDa9G")
    assert "".join(d.get("content", "") for d in deltas) == "Okay, let's check the weather for San Francisco, CA:"
    calls = [tc for d in deltas for tc in d.get("tool_calls", [])]
    assert calls[0] == {
        "index": 0,
        "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    assert {tc["index"] for tc in calls} == {0}
    assert json.loads("".join(tc["function"]["arguments"] for tc in calls)) == {"location": "San Francisco, CA"}
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"]["completion_tokens"] == 89 and chunks[-1]["usage"]["prompt_tokens"] == 472


def test_in_band_overload_raises_a_retryable_error() -> None:
    with pytest.raises(UpstreamHTTPError) as info:
        _stream("stream_overloaded.sse")
    error = info.value
    assert (error.upstream_status, error.retryable, error.code) == (503, True, "overloaded_error")
    assert "mid-stream: Overloaded" in error.message


def test_truncated_and_malformed_streams_raise() -> None:
    parser = provider().stream_parser(ChatRequest(model="a/m", body={}, stream=True), MODEL)
    parser.feed(UpstreamEvent(b'{"type": "message_start", "message": {"id": "msg_1"}}', "message_start"))
    parser.feed(UpstreamEvent(b'{"type": "message_delta", "delta": {"stop_reason": "end_turn"}}', "message_delta"))
    with pytest.raises(UpstreamProtocolError, match="before it finished"):
        parser.close()
    with pytest.raises(UpstreamProtocolError, match="before its start"):
        delta = {"type": "content_block_delta", "index": 4, "delta": {"type": "input_json_delta", "partial_json": "{"}}
        parser.feed(UpstreamEvent(json.dumps(delta).encode(), "content_block_delta"))
    with pytest.raises(UpstreamProtocolError):
        parser.feed(UpstreamEvent(b"{oops", "message_delta"))


def test_json_mode_stream_streams_the_tool_input_as_content() -> None:
    parser = provider().stream_parser(ChatRequest(model="a/m", body={}, stream=True), MODEL)
    message = {"id": "msg_j", "model": MODEL, "usage": {"input_tokens": 3, "output_tokens": 9}}
    message |= {"content": [{"type": "tool_use", "id": "toolu_j", "name": "portico_json_response", "input": {"a": 1}}]}
    message |= {"stop_reason": "tool_use"}
    chunks = [c.data for e in upstream.events(message) for c in parser.feed(UpstreamEvent(json.dumps(e).encode()))]
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert json.loads("".join(d.get("content", "") for d in deltas)) == {"a": 1}
    assert not any("tool_calls" in d for d in deltas)
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop" and parser.close() == []


# --- errors and registration ------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ERRORS, ids=lambda c: c["name"])
def test_error_bodies_map_to_statuses_and_messages(case: dict[str, Any]) -> None:
    raw = case["body"] if isinstance(case["body"], str) else json.dumps(case["body"])
    error = provider().map_error(case["status"], raw.encode(), case["headers"])
    assert isinstance(error, UpstreamHTTPError)
    got = {
        "http_status": error.http_status,
        "upstream_status": error.upstream_status,
        "code": error.code,
        "retryable": error.retryable,
        "retry_after": error.retry_after,
        "message": error.message,
    }
    assert got == case["expected"]


def test_registered_with_its_key_variable() -> None:
    adapter = load_adapters()["anthropic"]
    assert adapter.factory is AnthropicProvider and adapter.env_key == "ANTHROPIC_API_KEY"


# --- the mock is as strict as the brief says (so the end-to-end tests below mean something) -----------------------


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ({"messages": [{"role": "user", "content": "hi"}]}, "max_tokens"),
        ({"max_tokens": 9, "messages": [{"role": "user", "content": "hi"}], "seed": 1}, "seed"),
        ({"max_tokens": 9, "messages": [{"role": "user", "content": "hi", "name": "x"}]}, "name"),
        (
            {"max_tokens": 9, "messages": [{"role": "user", "content": [{"type": "text", "text": " "}]}]},
            "non-whitespace",
        ),
        ({"max_tokens": 9, "messages": [{"role": "system", "content": "x"}]}, "system"),
        (
            {"max_tokens": 9, "messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]},
            "alternate",
        ),
        (
            {
                "max_tokens": 9,
                "tools": [{"name": "f", "input_schema": {"type": "object"}}],
                "messages": [
                    {"role": "user", "content": "a"},
                    {"role": "assistant", "content": [{"type": "tool_use", "id": "t:1", "name": "f", "input": {}}]},
                ],
            },
            "pattern",
        ),
        (
            {
                "max_tokens": 9,
                "tools": [{"name": "f", "input_schema": {"type": "object"}}],
                "messages": [
                    {"role": "user", "content": "a"},
                    {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
                    {"role": "user", "content": "no result"},
                ],
            },
            "without `tool_result`",
        ),
        (
            {
                "max_tokens": 2000,
                "thinking": {"type": "enabled", "budget_tokens": 1024},
                "temperature": 0.2,
                "messages": [{"role": "user", "content": "a"}],
            },
            "temperature",
        ),
        (
            {
                "max_tokens": 9,
                "messages": [
                    {"role": "user", "content": "a"},
                    {"role": "assistant", "content": [{"type": "thinking", "thinking": "t"}]},
                    {"role": "user", "content": "b"},
                ],
            },
            "signature",
        ),
    ],
)
def test_the_mock_refuses_what_anthropic_refuses(body: dict[str, Any], complaint: str) -> None:
    with pytest.raises(upstream.Invalid, match=complaint):
        upstream.validate({"model": MODEL, **body})


# --- through the gateway ----------------------------------------------------------------------------------------


Gateway = NativeGateway


@pytest.fixture(scope="module")
def gw() -> Iterator[Gateway]:
    with native_gateway(upstream.install, "anthropic", upstream.API_KEY) as gateway:
        yield gateway


@pytest.fixture
def a(gw: Gateway) -> Iterator[Gateway]:
    gw.upstream.state.reset()
    yield gw


@pytest.mark.parametrize("case", REQUESTS["cases"], ids=lambda c: c["name"])
def test_gateway_sends_the_golden_body_and_the_strict_upstream_accepts_it(a: Gateway, case: dict[str, Any]) -> None:
    reply = a.post({"model": f"anthropic/{case['model']}", **case["body"]})
    assert reply.status == 200, reply.body
    assert a.sent() == case["expected"]
    assert reply.headers.get("x-portico-dropped-params", "") == ",".join(case["dropped"])


@pytest.mark.parametrize("case", REQUESTS["errors"], ids=lambda c: c["name"])
def test_gateway_refuses_before_calling_anthropic(a: Gateway, case: dict[str, Any]) -> None:
    reply = a.post({"model": f"anthropic/{MODEL}", **case["body"]})
    assert reply.status == 400, reply.body
    error = reply.json()["error"]
    assert (error["param"], error["code"]) == (case["param"], "unsupported_parameter")
    assert "'anthropic'" in error["message"]
    assert a.upstream.state.requests == []


def test_multi_turn_thinking_with_tools_round_trips_signatures(a: Gateway) -> None:
    extra = {"thinking": {"type": "enabled", "budget_tokens": 1024}}
    messages: Any = [{"role": "user", "content": "Weather in Paris?"}]
    first = a.client.chat.completions.create(
        model=f"anthropic/{MODEL}", messages=messages, tools=[WEATHER], max_tokens=4000, extra_body=extra
    )
    assert first.choices[0].finish_reason == "tool_calls"
    message = first.choices[0].message.model_dump(exclude_none=True)
    assert (message["reasoning"], message["reasoning_signature"]) == ("Let me think.", "sig-1")
    assert message["content"] == "I will call get_weather."
    call = message["tool_calls"][0]
    history: Any = [*messages, message, {"role": "tool", "tool_call_id": call["id"], "content": "Sunny"}]
    final = a.client.chat.completions.create(
        model=f"anthropic/{MODEL}", messages=history, tools=[WEATHER], max_tokens=4000, extra_body=extra
    )
    assert final.choices[0].message.content == "Tool result: Sunny"
    assistant = a.sent()["messages"][1]["content"]
    assert [b["type"] for b in assistant] == ["thinking", "text", "tool_use"] and assistant[0]["signature"] == "sig-1"
    assert a.sent()["messages"][2]["content"][0] == {
        "type": "tool_result",
        "tool_use_id": call["id"],
        "content": "Sunny",
    }


def test_streamed_reasoning_and_signature_through_the_sdk(a: Gateway) -> None:
    stream = a.client.chat.completions.create(
        model=f"anthropic/{MODEL}",
        messages=[{"role": "user", "content": "Think, then stream"}],
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"reasoning_effort": "low"},
    )
    chunks = list(stream)
    deltas = [c.choices[0].delta.model_dump() for c in chunks if c.choices]
    assert "".join(d.get("reasoning") or "" for d in deltas) == "Let me think."
    assert "".join(d.get("reasoning_signature") or "" for d in deltas) == "sig-1"
    assert "".join(d.get("content") or "" for d in deltas) == f"Echo from {MODEL}: Think, then stream"
    assert a.sent()["thinking"] == {"type": "enabled", "budget_tokens": 2048} and a.sent()["stream"] is True
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens > 0


def test_json_schema_answer_is_content_through_the_sdk(a: Gateway) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    reply = a.client.chat.completions.create(
        model=f"anthropic/{MODEL}",
        messages=[{"role": "user", "content": "Where?"}],
        response_format={"type": "json_schema", "json_schema": {"name": "place", "schema": schema}},
    )
    assert reply.choices[0].finish_reason == "stop" and not reply.choices[0].message.tool_calls
    assert json.loads(reply.choices[0].message.content or "") == {"city": "Paris"}
    chunks = list(
        a.client.chat.completions.create(
            model=f"anthropic/{MODEL}",
            messages=[{"role": "user", "content": "Where?"}],
            response_format={"type": "json_object"},
            stream=True,
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert json.loads(text) == {"city": "Paris"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]


def test_cache_usage_is_reported_in_prompt_token_details(a: Gateway) -> None:
    system = [{"type": "text", "text": "Long preamble.", "cache_control": {"type": "ephemeral"}}]
    reply = a.post({"model": f"anthropic/{MODEL}", "messages": [{"role": "system", "content": system}, *HELLO]})
    usage = reply.json()["usage"]
    assert usage["prompt_tokens_details"] == {"cached_tokens": 11, "cache_creation_tokens": 7}
    assert usage["prompt_tokens"] == 1 + 7 + 11  # input, cache writes and cache reads


@pytest.mark.parametrize(("status", "gateway_status", "upstream_status"), [(529, 502, 503), (413, 413, 413)])
def test_gateway_maps_overload_and_size_errors(
    a: Gateway, status: int, gateway_status: int, upstream_status: int
) -> None:
    a.upstream.state.fail_with(status, message=f"scripted {status}")
    reply = a.post({"model": f"anthropic/{MODEL}", "messages": HELLO})
    error = reply.json()["error"]
    assert (reply.status, error["upstream_status"], error["message"]) == (
        gateway_status,
        upstream_status,
        f"scripted {status}",
    )


def test_upstream_validation_errors_pass_through_as_400(a: Gateway) -> None:
    reply = a.post(
        {"model": f"anthropic/{MODEL}", "messages": HELLO, "thinking": {"type": "enabled", "budget_tokens": 500}}
    )
    assert reply.status == 400
    assert (
        "budget_tokens" in reply.json()["error"]["message"] and reply.json()["error"]["code"] == "invalid_request_error"
    )
