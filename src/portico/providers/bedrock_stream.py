"""Bedrock Converse answers → OpenAI shapes: the JSON completion, the ConverseStream event stream, and errors.

Why a module of its own: the JSON answer, the stream and the two error carriers (an HTTP error with
`x-amzn-ErrorType`, an exception frame inside a 200 stream) must agree on stop reasons, usage and statuses, so they
share the tables below. Everything here is pure: bytes and decoded JSON in, OpenAI JSON or a `ProviderError` out.

Reasoning comes back as the message fields `reasoning`, `reasoning_signature` and `redacted_reasoning` (stream
deltas of the same names), which `bedrock.py` accepts again in assistant history. JSON mode is emulated with the
forced tool `JSON_TOOL`; its input is returned as the message text, never as a tool call.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

import orjson

from portico.core.errors import UpstreamHTTPError, UpstreamProtocolError
from portico.core.types import ChatChunk, JSONObject, Usage
from portico.providers.base import parse_retry_after
from portico.providers.transport import UpstreamEvent

JSON_TOOL = "portico_json_response"
"""The tool `response_format` is emulated with; a client tool of this name is refused, so it is never ambiguous."""

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
"""Bedrock `stopReason` → OpenAI `finish_reason`; anything else (malformed_model_output, ...) reads as `stop`."""

ERROR_STATUS = {
    "throttlingexception": 429,
    "servicequotaexceededexception": 429,
    "modelnotreadyexception": 429,
    "unrecognizedclientexception": 401,
    "expiredtokenexception": 401,
    "accessdeniedexception": 403,
    "validationexception": 400,
    "resourcenotfoundexception": 404,
    "modeltimeoutexception": 408,
    "serviceunavailableexception": 503,
    "internalserverexception": 500,
    "modelerrorexception": 502,
    "modelstreamerrorexception": 502,
}
"""AWS error type (lower-cased) → the status the gateway treats it as. A bad or expired AWS credential is the
gateway's 401, not Bedrock's 403; model failures (AWS 424) are upstream faults (502, retryable); an exhausted
quota is a 429 so routing can fall back."""


def finish_reason(stop_reason: Any, json_mode: bool) -> str:
    finish = FINISH_REASONS.get(str(stop_reason), "stop")
    return "stop" if json_mode and finish == "tool_calls" else finish


def usage_to_openai(usage: Mapping[str, Any] | None) -> JSONObject:
    """Bedrock counts cache reads and writes apart from `inputTokens`; OpenAI's `prompt_tokens` includes them."""
    usage = usage or {}
    read = int(usage.get("cacheReadInputTokens") or 0)
    write = int(usage.get("cacheWriteInputTokens") or 0)
    prompt = int(usage.get("inputTokens") or 0) + read + write
    completion = int(usage.get("outputTokens") or 0)
    return Usage(prompt, completion, prompt + completion, read, write).to_openai()


def completion_from_converse(data: JSONObject, model: str, provider: str) -> JSONObject:
    """A Converse response body → an OpenAI `chat.completion`."""
    output = data.get("output")
    message = output.get("message") if isinstance(output, dict) else None
    if not isinstance(message, dict) or not isinstance(message.get("content"), list):
        raise UpstreamProtocolError(
            f"{provider} returned a Converse response without output.message", provider=provider
        )
    texts: list[str] = []
    calls: list[JSONObject] = []
    reasoning: list[str] = []
    signature: str | None = None
    redacted: str | None = None
    json_mode = False
    for block in message["content"]:
        if "text" in block:
            texts.append(str(block["text"]))
        elif "toolUse" in block:
            use = block["toolUse"]
            arguments = orjson.dumps(use.get("input") or {}).decode()
            if use.get("name") == JSON_TOOL:
                json_mode = True
                texts.append(arguments)
            else:
                function = {"name": use["name"], "arguments": arguments}
                calls.append({"id": use["toolUseId"], "type": "function", "function": function})
        elif "reasoningContent" in block:
            content = block["reasoningContent"]
            text_block = content.get("reasoningText")
            if isinstance(text_block, dict):
                reasoning.append(str(text_block.get("text") or ""))
                signature = text_block.get("signature") or signature
            if content.get("redactedContent"):
                redacted = content["redactedContent"]
    out: JSONObject = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        out["tool_calls"] = calls
    if reasoning:
        out["reasoning"] = "".join(reasoning)
    if signature:
        out["reasoning_signature"] = signature
    if redacted:
        out["redacted_reasoning"] = redacted
    choice = {
        "index": 0,
        "message": out,
        "logprobs": None,
        "finish_reason": finish_reason(data.get("stopReason"), json_mode),
    }
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        "usage": usage_to_openai(data.get("usage")),
    }


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value


def _error_type(raw: Any) -> str:
    """`ThrottlingException:http://internal.amazon.com/...` or `com.amazon.coral.service#X` → the bare name."""
    return str(raw or "").split(":", 1)[0].rsplit("#", 1)[-1].strip()


def http_error(provider: str, status: int, body: bytes, headers: Mapping[str, str]) -> UpstreamHTTPError:
    """A non-2xx Converse answer: the type from `x-amzn-ErrorType` (or `__type`), the text from `message`."""
    try:
        data: Any = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        data = None
    fields = data if isinstance(data, dict) else {}
    kind = _error_type(_header(headers, "x-amzn-ErrorType") or fields.get("__type") or fields.get("code"))
    message = fields.get("message") or fields.get("Message")
    if not message and data is None:
        message = body[:500].decode("utf-8", "replace").strip()
    return UpstreamHTTPError(
        str(message or f"{provider} returned HTTP {status}"),
        provider=provider,
        upstream_status=ERROR_STATUS.get(kind.lower(), status),
        retry_after=parse_retry_after(headers),
        code=kind or None,
        body=data,
    )


def stream_error(provider: str, event: UpstreamEvent) -> UpstreamHTTPError:
    """An exception (or protocol error) frame inside a ConverseStream: same statuses as the HTTP errors."""
    kind = (event.event or "").partition(":")[2]
    try:
        data: Any = orjson.loads(event.data) if event.data else {}
    except orjson.JSONDecodeError:
        data = {}
    message = data.get("message") or data.get("Message") if isinstance(data, dict) else None
    return UpstreamHTTPError(
        f"{provider} reported {kind} mid-stream: {message or 'no message'}",
        provider=provider,
        upstream_status=ERROR_STATUS.get(kind.lower(), 502),
        code=kind or None,
        body=data if isinstance(data, dict) else None,
    )


class ConverseStreamParser:
    """ConverseStream events → OpenAI chunks as they arrive; the last chunk is the usage of the `metadata` event.

    Tool calls are numbered in order of their `contentBlockStart`, and their input deltas become argument deltas.
    A stream is complete only once both `messageStop` and `metadata` arrived; `close()` raises otherwise.
    """

    def __init__(self, provider: str, model: str) -> None:
        self._provider = provider
        self._model = model
        self._id = f"chatcmpl-{uuid.uuid4().hex}"
        self._created = int(time.time())
        self._calls: dict[int, int] = {}
        self._json_blocks: set[int] = set()
        self._stopped = False
        self._done = False

    def feed(self, event: UpstreamEvent) -> list[ChatChunk]:
        kind, _, name = (event.event or "").partition(":")
        if kind != "event":
            raise stream_error(self._provider, event)
        data = self._load(event.data)
        if name == "messageStart":
            return [self._chunk({"role": "assistant", "content": ""})]
        if name == "contentBlockStart":
            return self._start(int(data.get("contentBlockIndex") or 0), data.get("start") or {})
        if name == "contentBlockDelta":
            delta = self._delta(int(data.get("contentBlockIndex") or 0), data.get("delta") or {})
            return [self._chunk(delta)] if delta else []
        if name == "messageStop":
            self._stopped = True
            json_mode = bool(self._json_blocks) and not self._calls
            return [self._chunk({}, finish_reason(data.get("stopReason"), json_mode))]
        if name == "metadata":
            self._done = True
            usage = usage_to_openai(data.get("usage"))
            return [ChatChunk({**self._head(), "choices": [], "usage": usage})]
        return []  # contentBlockStop and events this adapter does not know carry nothing for the client

    def close(self) -> list[ChatChunk]:
        if not (self._stopped and self._done):
            raise UpstreamProtocolError(
                f"{self._provider} closed the stream before it finished", provider=self._provider
            )
        return []

    def _start(self, block: int, start: JSONObject) -> list[ChatChunk]:
        use = start.get("toolUse")
        if not isinstance(use, dict):
            return []
        if use.get("name") == JSON_TOOL:
            self._json_blocks.add(block)
            return []
        index = self._calls[block] = len(self._calls)
        call = {"index": index, "id": use.get("toolUseId"), "type": "function"}
        call["function"] = {"name": use.get("name"), "arguments": ""}
        return [self._chunk({"tool_calls": [call]})]

    def _delta(self, block: int, delta: JSONObject) -> JSONObject:
        out: JSONObject = {}
        if "text" in delta:
            out["content"] = delta["text"]
        use = delta.get("toolUse")
        if isinstance(use, dict):
            piece = str(use.get("input") or "")
            if block in self._json_blocks:
                out["content"] = piece
            elif block in self._calls:
                out["tool_calls"] = [{"index": self._calls[block], "function": {"arguments": piece}}]
            else:
                raise UpstreamProtocolError(
                    f"{self._provider} streamed tool input for block {block} before its start", provider=self._provider
                )
        reasoning = delta.get("reasoningContent")
        if isinstance(reasoning, dict):
            if reasoning.get("text"):
                out["reasoning"] = reasoning["text"]
            if reasoning.get("signature"):
                out["reasoning_signature"] = reasoning["signature"]
            if reasoning.get("redactedContent"):
                out["redacted_reasoning"] = reasoning["redactedContent"]
        return out

    def _head(self) -> JSONObject:
        return {"id": self._id, "object": "chat.completion.chunk", "created": self._created, "model": self._model}

    def _chunk(self, delta: JSONObject, finish: str | None = None) -> ChatChunk:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return ChatChunk({**self._head(), "choices": [choice]})

    def _load(self, payload: bytes) -> JSONObject:
        try:
            data = orjson.loads(payload) if payload else {}
        except orjson.JSONDecodeError:
            raise UpstreamProtocolError(
                f"{self._provider} sent an invalid stream event", provider=self._provider
            ) from None
        return data if isinstance(data, dict) else {}
