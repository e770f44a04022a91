"""The Bedrock Converse adapter as pure translation: fixtures in the real wire formats in, OpenAI shapes out.

The gateway end to end (what the contract suite does not cover) is in `test_bedrock_gateway.py`.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import hmac
import json
import sys
import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pytest

from portico.config.load import ConfigError
from portico.config.schema import ProviderConfig
from portico.core.errors import RequestError, UnsupportedParameter, UpstreamHTTPError, UpstreamProtocolError
from portico.core.types import ChatChunk, ChatRequest, ProviderCredentials
from portico.providers.bedrock import BedrockProvider, SigV4Signer
from portico.providers.bedrock_request import THINKING_HEADROOM, to_converse, tool_id
from portico.providers.bedrock_stream import JSON_TOOL
from portico.providers.transport import UpstreamEvent, _EventStreamReader
from tests.upstreams.bedrock import event, exception, frame

FIXTURES = Path(__file__).parent.parent / "fixtures" / "bedrock"
MODEL = "anthropic.claude-3-5-sonnet-20241022-v2:0"
KEYS = {"aws_access_key_id": "AKIDEXAMPLE", "aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}


def provider(**config: Any) -> BedrockProvider:
    return BedrockProvider("bedrock", ProviderConfig.model_validate({"region": "us-west-2", **KEYS, **config}))


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def converse(**body: Any) -> dict[str, Any]:
    return to_converse({"messages": [{"role": "user", "content": "hi"}], **body}, "bedrock")[0]


def run_stream(data: bytes, step: int = 7, model: str = MODEL) -> list[ChatChunk]:
    """Feed event-stream bytes in small pieces through the transport's decoder and the adapter's parser."""
    reader, parser = _EventStreamReader(), provider().stream_parser(ChatRequest(model="b/m", body={}), model)
    chunks: list[ChatChunk] = []
    for start in range(0, len(data), step):
        for upstream_event in reader.feed(data[start : start + step]):
            chunks.extend(parser.feed(upstream_event))
    return chunks + parser.close()


def test_golden_request_translation() -> None:
    body, dropped = to_converse(fixture("openai_request.json"), "bedrock")
    assert body == fixture("converse_request.json")
    assert dropped == ("frequency_penalty", "logit_bias", "seed", "user")


def test_url_encodes_model_ids_like_the_aws_sdks_and_picks_the_framing() -> None:
    p = provider()
    call = p.build_request(ChatRequest(model="b/m", body={"messages": []}), MODEL)
    assert (
        call.url
        == "https://bedrock-runtime.us-west-2.amazonaws.com/model/anthropic.claude-3-5-sonnet-20241022-v2%3A0/converse"
    )
    assert call.framing == "json"
    arn = "arn:aws:bedrock:us-west-2:123456789012:inference-profile/us.anthropic.claude-3-5-sonnet-20241022-v2:0"
    streamed = p.build_request(ChatRequest(model="b/m", body={"messages": []}, stream=True), arn)
    assert streamed.url.endswith("/model/" + quote(arn, safe="") + "/converse-stream") and "%2F" in streamed.url
    assert streamed.framing == "aws-eventstream"
    assert provider(base_url="http://mock:9/").build_request(ChatRequest(model="b/m", body={}), "m").url == (
        "http://mock:9/model/m/converse"
    )


def _sigv4_by_hand(url_path: str, headers: dict[str, str], body: bytes, amz_date: str, secret: str) -> str:
    """SigV4 from the AWS spec, independently of botocore: the canonical URI is the sent path encoded once more."""
    names = sorted(headers)
    canonical = "\n".join(
        [
            "POST",
            quote(url_path, safe="/~"),
            "",
            "".join(f"{n}:{' '.join(headers[n].split())}\n" for n in names),
            ";".join(names),
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{amz_date[:8]}/us-west-2/bedrock/aws4_request"
    to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    key = ("AWS4" + secret).encode()
    for part in (amz_date[:8], "us-west-2", "bedrock", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return f"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/{scope}, SignedHeaders={';'.join(names)}, Signature={signature}"


def test_sigv4_signature_with_fixed_credentials_and_time(monkeypatch: pytest.MonkeyPatch) -> None:
    import botocore.auth

    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda **_: datetime.datetime(2024, 11, 5, 8, 30, 0))
    p = provider(aws_session_token="session-token-1")
    call = p.build_request(ChatRequest(model="b/m", body={"messages": [{"role": "user", "content": "hi"}]}), MODEL)
    assert call.headers["X-Amz-Date"] == "20241105T083000Z"
    assert call.headers["X-Amz-Security-Token"] == "session-token-1"
    signed = {
        "content-type": "application/json",
        "host": "bedrock-runtime.us-west-2.amazonaws.com",
        "x-amz-date": "20241105T083000Z",
        "x-amz-security-token": "session-token-1",
    }
    path = "/model/anthropic.claude-3-5-sonnet-20241022-v2%3A0/converse"
    expected = _sigv4_by_hand(path, signed, call.body, "20241105T083000Z", KEYS["aws_secret_access_key"])
    assert call.headers["Authorization"] == expected


def test_bedrock_api_keys_use_bearer_auth_and_per_request_keys_win() -> None:
    keyed = BedrockProvider("bedrock", ProviderConfig.model_validate({"region": "eu-west-1", "api_key": "bk-1"}))
    call = keyed.build_request(ChatRequest(model="b/m", body={"messages": []}), MODEL)
    assert call.headers["Authorization"] == "Bearer bk-1" and "X-Amz-Date" not in call.headers
    assert call.url.startswith("https://bedrock-runtime.eu-west-1.amazonaws.com/")
    byok = ChatRequest(model="b/m", body={"messages": []}, credentials=ProviderCredentials(api_key="bk-2"))
    assert provider().build_request(byok, MODEL).headers["Authorization"] == "Bearer bk-2"


def test_parse_tool_use_response() -> None:
    result = provider().parse_response((FIXTURES / "converse_tool_use.json").read_bytes(), MODEL)
    choice = result.body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Let me check the weather."
    (call,) = choice["message"]["tool_calls"]
    assert call["id"] == "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q" and call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    assert result.body["usage"] == {"prompt_tokens": 412, "completion_tokens": 61, "total_tokens": 473}
    assert result.body["model"] == MODEL and result.body["object"] == "chat.completion"


def test_parse_reasoning_redaction_cache_usage_and_length() -> None:
    result = provider().parse_response((FIXTURES / "converse_reasoning.json").read_bytes(), MODEL)
    choice = result.body["choices"][0]
    assert choice["finish_reason"] == "length"
    message = choice["message"]
    assert message["content"] == "Autumn moonlight"
    assert message["reasoning"] == "The user wants a haiku."
    assert message["reasoning_signature"] == "EqoBCkgIARABGAIiQL2Q1ZtQ=="
    assert message["redacted_reasoning"] == "RXhhbXBsZSByZWRhY3RlZCB0aGlua2luZw=="
    assert result.usage.prompt_tokens == 40 + 2048 and result.usage.cached_tokens == 2048
    assert result.usage.total_tokens == 2183 == result.usage.prompt_tokens + result.usage.completion_tokens


def test_parse_guardrail_and_emulated_json_mode() -> None:
    guarded = provider().parse_response((FIXTURES / "converse_guardrail.json").read_bytes(), MODEL)
    assert guarded.body["choices"][0]["finish_reason"] == "content_filter"
    content = [{"toolUse": {"toolUseId": "t1", "name": JSON_TOOL, "input": {"answer": 42}}}]
    raw = {"output": {"message": {"role": "assistant", "content": content}}, "stopReason": "tool_use", "usage": {}}
    choice = provider().parse_response(orjson.dumps(raw), MODEL).body["choices"][0]
    assert choice["finish_reason"] == "stop" and "tool_calls" not in choice["message"]
    assert json.loads(choice["message"]["content"]) == {"answer": 42}
    with pytest.raises(UpstreamProtocolError):
        provider().parse_response(b'{"stopReason": "end_turn"}', MODEL)


def test_stream_tool_use_fixture_becomes_openai_chunks() -> None:
    chunks = run_stream((FIXTURES / "converse_stream_tool_use.bin").read_bytes())
    deltas = [c.data["choices"][0]["delta"] for c in chunks if c.data["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert "".join(d.get("content") or "" for d in deltas) == "Let me check the weather."
    calls = [tc for d in deltas for tc in d.get("tool_calls") or []]
    assert calls[0] == {
        "index": 0,
        "id": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    assert json.loads("".join(tc["function"]["arguments"] for tc in calls)) == {"city": "Paris"}
    assert [c.data["choices"][0]["finish_reason"] for c in chunks if c.data["choices"]][-1] == "tool_calls"
    assert chunks[-1].data["choices"] == [] and chunks[-1].data["usage"]["total_tokens"] == 473
    assert len({c.data["id"] for c in chunks}) == 1 and chunks[0].data["model"] == MODEL


def test_stream_reasoning_fixture_carries_reasoning_signature_and_cache_usage() -> None:
    chunks = run_stream((FIXTURES / "converse_stream_reasoning.bin").read_bytes(), step=3)
    deltas = [c.data["choices"][0]["delta"] for c in chunks if c.data["choices"]]
    assert "".join(d.get("reasoning") or "" for d in deltas) == "The user wants a haiku."
    assert [d["reasoning_signature"] for d in deltas if "reasoning_signature" in d] == ["EqoBCkgIARABGAIiQL2Q1ZtQ=="]
    assert any(c.has_content for c in chunks[:2])  # reasoning commits the stream like text does
    usage = chunks[-1].data["usage"]
    assert usage["prompt_tokens"] == 2088 and usage["prompt_tokens_details"]["cached_tokens"] == 2048


def test_stream_exception_frames_map_to_provider_errors() -> None:
    with pytest.raises(UpstreamHTTPError) as info:
        run_stream((FIXTURES / "converse_stream_throttled.bin").read_bytes())
    assert (info.value.http_status, info.value.retryable, info.value.code) == (429, True, "throttlingException")
    assert "Too many tokens" in info.value.message
    for name, status in [
        ("modelStreamErrorException", 502),
        ("validationException", 400),
        ("serviceUnavailableException", 502),
        ("internalServerException", 502),
    ]:
        with pytest.raises(UpstreamHTTPError) as info:
            run_stream(event("messageStart", {"role": "assistant"}) + exception(name, "boom"))
        assert info.value.http_status == status, name
    protocol_error = frame({":message-type": "error", ":error-code": "InternalFailure", ":error-message": "oops"}, b"")
    with pytest.raises(UpstreamHTTPError, match="InternalFailure mid-stream: oops"):
        run_stream(protocol_error)


def test_stream_without_end_is_a_protocol_error_and_corrupt_frames_are_refused() -> None:
    frames = [event("messageStart", {"role": "assistant"}), event("contentBlockDelta", {"delta": {"text": "Hi"}})]
    with pytest.raises(UpstreamProtocolError, match="before it finished"):
        run_stream(b"".join(frames))
    with pytest.raises(UpstreamProtocolError):  # messageStop without metadata is still cut short
        run_stream(b"".join([*frames, event("messageStop", {"stopReason": "end_turn"})]))
    corrupt = bytearray(frames[1])
    corrupt[-1] ^= 0xFF
    with pytest.raises(ValueError, match="ChecksumMismatch"):
        _EventStreamReader().feed(bytes(corrupt))


@pytest.mark.parametrize("case", fixture("errors.json"), ids=lambda c: c["code"])
def test_error_mapping(case: dict[str, Any]) -> None:
    error = provider().map_error(case["status"], orjson.dumps(case["body"]), case["headers"])
    assert isinstance(error, UpstreamHTTPError)
    assert (error.http_status, error.code) == (case["gateway_status"], case["code"])
    assert error.message == case["body"].get("message", case["body"].get("Message"))
    assert error.retry_after == (2.0 if case["status"] == 429 else None)
    assert error.retryable == (case["gateway_status"] in (408, 429) or case["gateway_status"] >= 500)


def test_refusals_are_clear_400s() -> None:
    image = [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]
    tool: Any = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"modalities": ["text", "audio"]}, "audio"),
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"messages": [{"role": "user", "content": image}]}, "messages[0].content[0]"),
        ({"response_format": {"type": "json_object"}, "tools": [tool]}, "response_format"),
        ({"response_format": {"type": "json_object"}, "reasoning_effort": "low"}, "response_format"),
        ({"tools": [{"type": "function", "function": {"name": JSON_TOOL}}]}, "tools"),
    ]
    for body, param in cases:
        with pytest.raises(UnsupportedParameter) as info:
            converse(**body)
        assert info.value.param == param and info.value.http_status == 400
    bad_args = {"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{oops"}}]}
    with pytest.raises(RequestError, match="JSON object"):
        converse(messages=[{"role": "user", "content": "x"}, bad_args])


def test_history_is_normalised_for_bedrock() -> None:
    long_id = "call_" + "x" * 80
    body = converse(
        messages=[
            {"role": "user", "content": "one"},
            {"role": "user", "content": [{"type": "text", "text": "two"}, {"type": "text", "text": ""}]},
            {"role": "assistant", "content": None, "reasoning": "unsigned thoughts"},
            {
                "role": "assistant",
                "content": [{"type": "text", "text": "three"}, {"type": "thinking", "thinking": "t"}],
            },
            {"role": "assistant", "tool_calls": [{"id": long_id, "function": {"name": "f", "arguments": ""}}]},
            {"role": "tool", "tool_call_id": long_id, "content": [{"type": "text", "text": "ok"}]},
        ],
        tools=[{"type": "function", "function": {"name": "f"}}],
    )
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][0]["content"] == [{"text": "one"}, {"text": "two"}]
    use = body["messages"][1]["content"][1]["toolUse"]
    assert body["messages"][1]["content"][0] == {"text": "three"}
    assert use["input"] == {} and len(use["toolUseId"]) <= 64
    assert body["messages"][2]["content"][0]["toolResult"]["toolUseId"] == use["toolUseId"] == tool_id(long_id)
    assert tool_id("call_a.b") != tool_id("call_a:b") and tool_id("tooluse_Ab-9_") == "tooluse_Ab-9_"
    assert body["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"] == {"json": {"type": "object", "properties": {}}}


def test_tool_choice_variants_and_none_renders_tool_history_as_text() -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    assert converse(tools=tools, tool_choice="auto")["toolConfig"]["toolChoice"] == {"auto": {}}
    named = {"type": "function", "function": {"name": "f"}}
    assert converse(tools=tools, tool_choice=named)["toolConfig"]["toolChoice"] == {"tool": {"name": "f"}}
    history = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": '{"a": 1}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "done"},
    ]
    body = converse(messages=history, tools=tools, tool_choice="none")
    assert "toolConfig" not in body
    assert body["messages"][1]["content"] == [{"text": '[called f({"a":1})]'}]
    assert body["messages"][2]["content"] == [{"text": "[tool result: done]"}]


def test_reasoning_controls_and_json_schema_emulation() -> None:
    effort = converse(reasoning_effort="low")
    assert effort["additionalModelRequestFields"] == {"thinking": {"type": "enabled", "budget_tokens": 2048}}
    assert effort["inferenceConfig"]["maxTokens"] == 2048 + THINKING_HEADROOM
    explicit = converse(thinking={"type": "enabled", "budget_tokens": 1024}, max_tokens=3000, top_k=5)
    assert explicit["inferenceConfig"] == {"maxTokens": 3000}
    assert explicit["additionalModelRequestFields"] == {
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "top_k": 5,
    }
    assert converse(thinking={"type": "adaptive"})["additionalModelRequestFields"] == {"thinking": {"type": "adaptive"}}
    assert "additionalModelRequestFields" not in converse(thinking={"type": "disabled"}, reasoning_effort="high")
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}
    tool_config = converse(response_format=fmt)["toolConfig"]
    assert tool_config["toolChoice"] == {"tool": {"name": JSON_TOOL}}
    assert tool_config["tools"][0]["toolSpec"]["inputSchema"] == {"json": schema}


def test_media_from_s3_and_bare_base64_files() -> None:
    parts = [
        {"type": "image_url", "image_url": {"url": "s3://bucket/photos/cat.JPG"}},
        {"type": "file", "file": {"file_data": "aGVsbG8=", "mime_type": "text/plain", "filename": "notes (v2).txt"}},
        {"type": "file", "file": {"uri": "s3://bucket/docs/a.pdf"}},
    ]
    content = converse(messages=[{"role": "user", "content": parts}])["messages"][0]["content"]
    assert content[0] == {"image": {"format": "jpeg", "source": {"s3Location": {"uri": "s3://bucket/photos/cat.JPG"}}}}
    assert content[1] == {"document": {"format": "txt", "name": "notes (v2)", "source": {"bytes": "aGVsbG8="}}}
    assert content[2]["document"]["source"] == {"s3Location": {"uri": "s3://bucket/docs/a.pdf"}}


def test_configuration_errors_are_clear(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(ConfigError, match=r"providers\.b\.region"):
        BedrockProvider("b", ProviderConfig.model_validate(KEYS))
    with pytest.raises(ConfigError, match="both aws_access_key_id"):
        BedrockProvider("b", ProviderConfig.model_validate({"region": "us-east-1", "aws_access_key_id": "AKID"}))
    monkeypatch.setenv("AWS_REGION", "ap-south-1")
    with pytest.raises(ConfigError, match="no AWS credentials"):
        BedrockProvider("b", ProviderConfig())
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-env")
    from_chain = BedrockProvider("b", ProviderConfig())  # the default credential chain, region from AWS_REGION
    assert (
        from_chain.region == "ap-south-1"
        and "Credential=AKIDENV/"
        in from_chain.build_request(ChatRequest(model="b/m", body={"messages": []}), "m").headers["Authorization"]
    )
    monkeypatch.setitem(sys.modules, "botocore.auth", None)
    with pytest.raises(ConfigError, match=r"portico\[bedrock\]"):
        BedrockProvider("b", ProviderConfig.model_validate(KEYS))


async def test_refreshable_credentials_refresh_off_the_event_loop() -> None:
    import botocore

    class Refreshable:
        def __init__(self) -> None:
            self.refreshed_on: list[int] = []

        def refresh_needed(self) -> bool:
            return not self.refreshed_on

        def get_frozen_credentials(self) -> Any:
            self.refreshed_on.append(threading.get_ident())
            return botocore.credentials.ReadOnlyCredentials("AKID", "secret", None)

    credentials = Refreshable()
    signer = SigV4Signer(botocore, "us-east-1", credentials)
    await signer.refresh()
    await signer.refresh()  # no longer needed: nothing happens
    assert credentials.refreshed_on and credentials.refreshed_on[0] != threading.get_ident()
    assert len(credentials.refreshed_on) == 1
    await asyncio.sleep(0)
    assert "Credential=AKID/" in signer.sign("https://h/model/m/converse", {}, b"{}")["Authorization"]


def test_unknown_events_are_ignored() -> None:
    parser = provider().stream_parser(ChatRequest(model="b/m", body={}), MODEL)
    assert parser.feed(UpstreamEvent(b'{"contentBlockIndex": 0}', "event:contentBlockStop")) == []
    assert parser.feed(UpstreamEvent(b'{"x": 1}', "event:someFutureEvent")) == []


def test_strict_tools_are_sent_plain_and_null_audio_is_not_reported() -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}, "strict": True}}
    body, dropped = to_converse({"messages": [{"role": "user", "content": "x"}], "tools": [tool], "audio": None}, "b")
    assert body["toolConfig"]["tools"] == [{"toolSpec": {"name": "f", "inputSchema": {"json": {"type": "object"}}}}]
    assert dropped == ()
