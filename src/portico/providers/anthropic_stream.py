"""Anthropic Messages → OpenAI: a Message becomes a `chat.completion`, its named SSE events become chunks, and
`{"type": "error", "error": {type, message}}` bodies (HTTP or in-band) become `ProviderError`s.

Why one module for all three: the JSON answer, the stream and both error carriers must agree on stop reasons,
usage and statuses, so they share the tables below. Text blocks are content; `tool_use` blocks are tool calls
with Anthropic's own ids; `thinking` is `reasoning` plus `reasoning_signature`, `redacted_thinking` is
`redacted_reasoning` (the names the Bedrock adapter uses, accepted again in history). The forced tool `JSON_TOOL`
that emulates `response_format` comes back as the message text with finish reason `stop`. A stream is complete
only at `message_stop`; one that ends before it, or that carries an `error` event, is an error.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson

from portico.core.errors import UpstreamHTTPError, UpstreamProtocolError
from portico.core.types import ChatChunk, JSONObject, Usage
from portico.providers.base import decode_stream_event, parse_retry_after
from portico.providers.transport import UpstreamEvent

JSON_TOOL = "portico_json_response"
"""The tool `response_format` is emulated with; a client tool of this name is refused, so it is never ambiguous."""

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
"""Anthropic `stop_reason` → OpenAI `finish_reason`; anything new reads as `stop`."""

ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 503,
    "timeout_error": 504,
}
"""Error type → the status the gateway treats it as. Anthropic's overload is HTTP 529, which no retry or fallback
list names; as 503 it is retried and falls back like every other temporary upstream outage."""


def finish_reason(stop_reason: Any, json_mode: bool) -> str:
    finish = FINISH_REASONS.get(str(stop_reason), "stop")
    return "stop" if json_mode and finish == "tool_calls" else finish


def usage_to_openai(usage: Mapping[str, Any] | None) -> JSONObject:
    """Anthropic counts cache reads and writes apart from `input_tokens`; OpenAI's `prompt_tokens` includes them."""
    usage = usage or {}
    read = int(usage.get("cache_read_input_tokens") or 0)
    write = int(usage.get("cache_creation_input_tokens") or 0)
    prompt = int(usage.get("input_tokens") or 0) + read + write
    completion = int(usage.get("output_tokens") or 0)
    return Usage(prompt, completion, prompt + completion, read, write).to_openai()


def completion_from_message(data: JSONObject, model: str, provider: str) -> JSONObject:
    """A Messages response body → an OpenAI `chat.completion` (the `msg_…` id is kept as the completion id)."""
    if data.get("type") == "error":
        raise error_from_payload(provider, data, 502)
    content = data.get("content")
    if not isinstance(content, list):
        raise UpstreamProtocolError(f"{provider} returned a message without content", provider=provider)
    texts: list[str] = []
    calls: list[JSONObject] = []
    reasoning: list[str] = []
    signature: str | None = None
    redacted: list[str] = []
    json_mode = False
    for block in content:
        kind = block.get("type")
        if kind == "text":
            texts.append(str(block.get("text") or ""))
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            if block.get("name") == JSON_TOOL:
                json_mode = True
                texts.append(arguments)
            else:
                function = {"name": block.get("name") or "", "arguments": arguments}
                calls.append({"id": block.get("id") or "", "type": "function", "function": function})
        elif kind == "thinking":
            reasoning.append(str(block.get("thinking") or ""))
            signature = block.get("signature") or signature
        elif kind == "redacted_thinking" and block.get("data"):
            redacted.append(str(block["data"]))
    message: JSONObject = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        message["tool_calls"] = calls
    if reasoning:
        message["reasoning"] = "".join(reasoning)
    if signature:
        message["reasoning_signature"] = signature
    if redacted:
        message["redacted_reasoning"] = " ".join(redacted)
    choice = {
        "index": 0,
        "message": message,
        "logprobs": None,
        "finish_reason": finish_reason(data.get("stop_reason"), json_mode),
    }
    return {
        "id": str(data.get("id") or ""),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        "usage": usage_to_openai(data.get("usage")),
    }


def _error_fields(data: Any) -> tuple[str, str]:
    """`{"type": "error", "error": {"type", "message"}, "request_id"}` → (error type, message)."""
    error = data.get("error") if isinstance(data, dict) else None
    error = error if isinstance(error, dict) else {}
    return str(error.get("type") or ""), str(error.get("message") or "")


def error_from_payload(provider: str, data: Any, status: int, prefix: str = "") -> UpstreamHTTPError:
    """An error object inside a 200 answer (an SSE `error` event): its type decides the status."""
    kind, message = _error_fields(data)
    return UpstreamHTTPError(
        prefix + (message or f"{provider} reported {kind or 'an error'}"),
        provider=provider,
        upstream_status=ERROR_STATUS.get(kind, status),
        code=kind or None,
        body=data,
    )


def http_error(provider: str, status: int, body: bytes, headers: Mapping[str, str]) -> UpstreamHTTPError:
    """A non-2xx answer: the HTTP status stands (529 becomes 503); non-JSON bodies (Cloudflare's 413) keep text."""
    try:
        data: Any = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        data = None
    kind, message = _error_fields(data)
    if not message and data is None:
        message = body[:500].decode("utf-8", "replace").strip()
    return UpstreamHTTPError(
        message or f"{provider} returned HTTP {status}",
        provider=provider,
        upstream_status=503 if status == 529 else status,
        retry_after=parse_retry_after(headers),
        code=kind or None,
        body=data,
    )


class AnthropicStreamParser:
    """Named SSE events → OpenAI chunks as they arrive; the last chunk carries the usage of the whole message.

    Content blocks are addressed by `index`; tool-use blocks are numbered as OpenAI tool calls in the order they
    start, and their `input_json_delta`s become argument deltas of that call.
    """

    def __init__(self, provider: str, model: str) -> None:
        self._provider = provider
        self._model = model
        self._id = ""
        self._created = int(time.time())
        self._calls: dict[int, int] = {}
        self._json_blocks: set[int] = set()
        self._redacted = 0
        self._usage: JSONObject = {}
        self._finished = False
        self._done = False

    def feed(self, event: UpstreamEvent) -> list[ChatChunk]:
        data = decode_stream_event(event, self._provider)
        if data is None:
            return []
        kind = data.get("type") or event.event
        if kind == "message_start":
            message = data.get("message") or {}
            self._id = str(message.get("id") or self._id)
            self._usage.update(message.get("usage") or {})
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            return self._start(int(data.get("index") or 0), data.get("content_block") or {})
        if kind == "content_block_delta":
            delta = self._delta(int(data.get("index") or 0), data.get("delta") or {})
            return [self._chunk(delta)] if delta else []
        if kind == "message_delta":
            self._usage.update({k: v for k, v in (data.get("usage") or {}).items() if v is not None})
            reason = (data.get("delta") or {}).get("stop_reason")
            return [self._finish(reason)] if reason and not self._finished else []
        if kind == "message_stop":
            self._done = True
            tail = [] if self._finished else [self._finish(None)]
            return [*tail, ChatChunk({**self._head(), "choices": [], "usage": usage_to_openai(self._usage)})]
        if kind == "error":
            prefix = f"{self._provider} reported an error mid-stream: "
            raise error_from_payload(self._provider, data, 502, prefix)
        return []  # ping, content_block_stop and event types added later carry nothing for the client

    def close(self) -> list[ChatChunk]:
        if not self._done:
            raise UpstreamProtocolError(
                f"{self._provider} closed the stream before it finished", provider=self._provider
            )
        return []

    def _start(self, index: int, block: JSONObject) -> list[ChatChunk]:
        kind = block.get("type")
        if kind == "tool_use":
            if block.get("name") == JSON_TOOL:
                self._json_blocks.add(index)
                return []
            position = self._calls[index] = len(self._calls)
            call = {"index": position, "id": block.get("id") or "", "type": "function"}
            call["function"] = {"name": block.get("name") or "", "arguments": ""}
            return [self._chunk({"tool_calls": [call]})]
        delta: JSONObject = {}
        if kind == "text" and block.get("text"):
            delta["content"] = block["text"]
        elif kind == "thinking" and block.get("thinking"):
            delta["reasoning"] = block["thinking"]
        elif kind == "redacted_thinking" and block.get("data"):  # space-separated, as in completions
            delta["redacted_reasoning"] = (" " if self._redacted else "") + str(block["data"])
            self._redacted += 1
        return [self._chunk(delta)] if delta else []

    def _delta(self, index: int, delta: JSONObject) -> JSONObject:
        kind = delta.get("type")
        if kind == "text_delta":
            return {"content": delta.get("text") or ""} if delta.get("text") else {}
        if kind == "thinking_delta":
            return {"reasoning": delta.get("thinking") or ""} if delta.get("thinking") else {}
        if kind == "signature_delta":
            return {"reasoning_signature": delta.get("signature") or ""} if delta.get("signature") else {}
        if kind == "input_json_delta":
            piece = str(delta.get("partial_json") or "")
            if not piece:
                return {}
            if index in self._json_blocks:
                return {"content": piece}
            if index not in self._calls:
                raise UpstreamProtocolError(
                    f"{self._provider} streamed tool input for block {index} before its start", provider=self._provider
                )
            return {"tool_calls": [{"index": self._calls[index], "function": {"arguments": piece}}]}
        return {}  # citations_delta and delta types added later

    def _finish(self, reason: Any) -> ChatChunk:
        self._finished = True
        json_mode = bool(self._json_blocks) and not self._calls
        return self._chunk({}, finish_reason(reason, json_mode))

    def _head(self) -> JSONObject:
        return {"id": self._id, "object": "chat.completion.chunk", "created": self._created, "model": self._model}

    def _chunk(self, delta: JSONObject, finish: str | None = None) -> ChatChunk:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return ChatChunk({**self._head(), "choices": [choice]})
