"""The OpenAI-compatible adapter: the body leaves as sent (minus what a flavor rejects), answers come back unchanged."""

from __future__ import annotations

import orjson
import pytest

from portico.config.schema import ProviderConfig
from portico.core.errors import UpstreamHTTPError, UpstreamProtocolError
from portico.core.types import ChatChunk, ChatRequest, ChatResult, ProviderCredentials
from portico.providers.openai_compatible import OpenAICompatibleProvider
from portico.providers.openai_family import FLAVORS
from portico.providers.transport import SSEReader, UpstreamEvent

VLLM_EXTRAS = {
    "top_k": 20,
    "min_p": 0.05,
    "repetition_penalty": 1.1,
    "structured_outputs": {"regex": "[a-z]+"},
    "chat_template_kwargs": {"enable_thinking": False},
    "skip_special_tokens": False,
}


def provider(kind: str, **config: object) -> OpenAICompatibleProvider:
    return OpenAICompatibleProvider(kind, ProviderConfig.model_validate(config), flavor=FLAVORS[kind])


def request(**body: object) -> ChatRequest:
    return ChatRequest(model="x/y", body={"messages": [{"role": "user", "content": "hi"}], **body})


def test_vllm_receives_extra_parameters_exactly_as_sent() -> None:
    call = provider("vllm", base_url="http://h:8000/v1/").build_request(request(**VLLM_EXTRAS), "meta-llama/L-3")
    sent = orjson.loads(call.body)
    assert call.url == "http://h:8000/v1/chat/completions"
    assert sent == {"messages": [{"role": "user", "content": "hi"}], **VLLM_EXTRAS, "model": "meta-llama/L-3"}
    assert call.dropped_params == ()
    assert "Authorization" not in call.headers


def test_openai_drops_what_it_rejects_and_says_so() -> None:
    extras = {k: v for k, v in VLLM_EXTRAS.items() if k != "structured_outputs"}  # that one is refused
    call = provider("openai", api_key="sk-up").build_request(request(temperature=0.1, **extras), "gpt-4o")
    sent = orjson.loads(call.body)
    assert sent == {"messages": [{"role": "user", "content": "hi"}], "temperature": 0.1, "model": "gpt-4o"}
    assert set(call.dropped_params) == set(extras)
    assert call.headers["Authorization"] == "Bearer sk-up"
    assert call.url == "https://api.openai.com/v1/chat/completions"


def test_streams_always_ask_for_usage_without_losing_client_options() -> None:
    req = ChatRequest(
        model="x/y", body={"messages": [], "stream_options": {"continuous_usage_stats": True}}, stream=True
    )
    sent = orjson.loads(provider("vllm").build_request(req, "m").body)
    assert sent["stream"] is True
    assert sent["stream_options"] == {"continuous_usage_stats": True, "include_usage": True}


def test_request_credentials_override_configured_ones() -> None:
    req = ChatRequest(
        model="x/y", body={"messages": []}, credentials=ProviderCredentials("sk-byok", "http://custom/v1")
    )
    call = provider("openai", api_key="sk-config").build_request(req, "gpt-4o")
    assert call.headers["Authorization"] == "Bearer sk-byok"
    assert call.url == "http://custom/v1/chat/completions"


def test_parse_response_keeps_raw_bytes_and_rejects_garbage() -> None:
    p = provider("openai")
    raw = b'{"id":"c","object":"chat.completion","created":1,"model":"gpt-4o","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}'
    result = p.parse_response(raw, "gpt-4o")
    assert result.raw == raw and result.usage.total_tokens == 7
    with pytest.raises(UpstreamProtocolError):
        p.parse_response(b"<html>oops</html>", "gpt-4o")
    with pytest.raises(UpstreamProtocolError):
        p.parse_response(b'{"object": "chat.completion"}', "gpt-4o")


def test_error_mapping_keeps_message_status_and_retry_after() -> None:
    body = b'{"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}'
    error = provider("openai").map_error(429, body, {"retry-after": "3"})
    assert isinstance(error, UpstreamHTTPError)
    assert (error.http_status, error.retryable, error.retry_after) == (429, True, 3.0)
    assert error.message == "Rate limit reached"
    server = provider("openai").map_error(503, b"upstream connect error", {})
    assert (server.http_status, server.retryable) == (502, True)
    assert provider("openai").map_error(400, b'{"detail": [{"msg": "bad field"}]}', {}).message == "bad field"


def test_sse_reader_handles_split_frames_crlf_and_comments() -> None:
    reader = SSEReader()
    assert reader.feed(b'data: {"a":') == []
    assert reader.feed(b"1}\n\n: keep-alive\n\ndata: [DO") == [UpstreamEvent(b'{"a":1}')]
    assert reader.feed(b"NE]\r\n\r\nevent: ping\r\ndata: {}\r\n\r\n") == [
        UpstreamEvent(b"[DONE]"),
        UpstreamEvent(b"{}", "ping"),
    ]


def test_stream_parser_relays_bytes_and_detects_truncation_and_errors() -> None:
    parser = provider("openai").stream_parser(request(), "gpt-4o")
    chunk = b'{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}'
    (out,) = parser.feed(UpstreamEvent(chunk))
    assert out.raw == b"data: " + chunk + b"\n\n" and out.has_content
    with pytest.raises(UpstreamProtocolError):
        parser.close()  # no [DONE]: the stream was cut
    with pytest.raises(UpstreamProtocolError, match="overloaded"):
        parser.feed(UpstreamEvent(b'{"error": {"message": "overloaded"}}'))
    parser.feed(UpstreamEvent(b"[DONE]"))
    assert parser.close() == []


@pytest.mark.parametrize(
    ("payload", "choices", "usage_key", "usage", "error"),
    [
        (b'{"choices":[{"index":0,"delta":{"content":"x"}}],"usage":null}', True, True, None, False),
        (b'{"choices": [ ], "usage": {"prompt_tokens": 3, "total_tokens": 3}}', False, True, 3, False),
        (b'{"choices":[],"usage":{}}', False, True, None, False),
        (b'{"id":"c","choices":[{"index":0,"delta":{}}]}', True, False, None, False),
        (b'{"error":{"message":"boom"},"choices":null}', False, False, None, True),
        (b'{"error":"late","choices":[{"index":0,"delta":{"content":"x"}}]}', True, False, None, False),
        (b'{"choices":[],"usage":7}', False, True, None, False),
    ],
)
def test_relayed_chunks_are_probed_like_their_decoded_form(
    payload: bytes, choices: bool, usage_key: bool, usage: int | None, error: bool
) -> None:
    """The probe must answer exactly what the decoded dict would: the relay decides on these answers whether to
    strip usage, account it, or raise an in-band error."""
    relayed = ChatChunk.relayed(payload)
    decoded = ChatChunk(orjson.loads(payload))
    assert relayed is not None
    for chunk in (relayed, decoded):
        assert chunk.has_choices is choices
        assert chunk.has_usage_key is usage_key
        assert (chunk.usage or {}).get("total_tokens") == usage
        assert chunk.is_error is error
    assert relayed.data == orjson.loads(payload) and relayed.raw == b"data: " + payload + b"\n\n"


def test_relayed_chunks_skip_non_objects_and_refuse_garbage() -> None:
    assert ChatChunk.relayed(b"[1, 2]") is None
    assert ChatChunk.relayed(b'"keep-alive"') is None
    with pytest.raises(ValueError):
        ChatChunk.relayed(b"{not json")
    parser = provider("openai").stream_parser(request(), "gpt-4o")
    assert parser.feed(UpstreamEvent(b"[1]")) == []
    with pytest.raises(UpstreamProtocolError, match="invalid stream event"):
        parser.feed(UpstreamEvent(b'{"choices": [}'))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"[]", "JSON list, not an object"),
        (b'{"choices": {"0": {}}}', "without choices"),
        (b'{"choices": null}', "without choices"),
        (b'{"choices": [], "model": 5}', ""),
        (b'{"choices": [', "invalid JSON"),
    ],
)
def test_answers_the_probe_refuses_get_the_slow_path_and_its_exact_error(raw: bytes, message: str) -> None:
    p = provider("openai")
    if not message:  # an odd but valid answer is still relayed, its model read the slow way
        result = p.parse_response(raw, "gpt-4o")
        assert result.raw == raw and result.model == "5" and result.usage.total_tokens == 0
        return
    with pytest.raises(UpstreamProtocolError, match=message):
        p.parse_response(raw, "gpt-4o")


def test_a_relayed_answer_decodes_its_body_only_when_asked() -> None:
    raw = b'{"id":"c","model":"gpt-4o-2024","choices":[{"index":0}],"usage":{"prompt_tokens":2,"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":1}}}'
    result = ChatResult.relayed(raw, "gpt-4o")
    assert result.model == "gpt-4o-2024"
    assert (result.usage.prompt_tokens, result.usage.total_tokens, result.usage.cached_tokens) == (2, 5, 1)
    assert result.body == orjson.loads(raw)
    with pytest.raises(ValueError):
        ChatResult()
    odd = b'{"choices":[],"usage":{"prompt_tokens":2.0,"completion_tokens":null,"prompt_tokens_details":null}}'
    with pytest.raises(ValueError):
        ChatResult.relayed(odd, "gpt-4o")  # typed otherwise than the probe expects: decoded instead
    assert provider("openai").parse_response(odd, "gpt-4o").usage.total_tokens == 2


@pytest.mark.parametrize(
    "value", [b"[]", b"[ \n ]", b"{}", b"null", b"false", b"0", b"-0", b"0.0", b"0e3", b'""', b"[0]", b"0.5", b'"x"']
)
def test_the_probe_finds_a_value_empty_exactly_when_python_would(value: bytes) -> None:
    chunk = ChatChunk.relayed(b'{"choices": ' + value + b"}")
    assert chunk is not None and chunk.has_choices is bool(orjson.loads(value))
