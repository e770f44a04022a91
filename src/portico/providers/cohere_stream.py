"""Cohere v2 → OpenAI: a chat response becomes a `chat.completion`, its typed SSE events become chunks.

Both paths read content the same way: `text` items are content, `thinking` items are `reasoning`, the `tool_plan`
(what the model says before calling tools) is content too, and tool calls keep Cohere's own ids. A stream ends
with `message-end`; one that stops before it, or whose `message-end` carries an error, is an error, never a
clean-looking end.
"""

from __future__ import annotations

import time
from typing import Any

from portico.core.errors import UpstreamProtocolError
from portico.core.types import ChatChunk, JSONObject, Usage
from portico.providers.base import decode_stream_event
from portico.providers.transport import UpstreamEvent

FINISH_REASONS = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length",
    "TOOL_CALL": "tool_calls",
    "ERROR": "error",
    "TIMEOUT": "error",
}


def finish_reason(reason: Any) -> str:
    return FINISH_REASONS.get(str(reason), "stop")


def usage_from(usage: Any) -> JSONObject:
    """`usage.tokens` is what the model consumed and produced; `billed_units` only stands in when it is absent."""
    usage = usage if isinstance(usage, dict) else {}
    tokens = usage.get("tokens") or usage.get("billed_units") or {}
    prompt, completion = int(tokens.get("input_tokens") or 0), int(tokens.get("output_tokens") or 0)
    cached = int(usage.get("cached_tokens") or 0)
    return Usage(prompt, completion, prompt + completion, cached_tokens=cached).to_openai()


def logprobs_from(items: Any) -> JSONObject | None:
    """Cohere scores text chunks (several tokens each): one OpenAI entry per chunk, its tokens' logprobs summed."""
    if not isinstance(items, list):
        return None
    content = []
    for item in items:
        text = str(item.get("text") or "")
        content.append(
            {
                "token": text,
                "logprob": sum(item.get("logprobs") or ()),
                "bytes": list(text.encode()),
                "top_logprobs": [],
            }
        )
    return {"content": content, "refusal": None}


def completion_from_response(data: JSONObject, model: str) -> JSONObject:
    message = data.get("message") or {}
    texts = [str(i.get("text") or "") for i in message.get("content") or () if i.get("type") == "text"]
    thoughts = [str(i.get("thinking") or "") for i in message.get("content") or () if i.get("type") == "thinking"]
    out: JSONObject = {"role": "assistant", "content": "".join(texts) if texts else message.get("tool_plan") or None}
    calls = [
        {
            "id": call.get("id") or f"call_{n}",
            "type": "function",
            "function": {
                "name": (call.get("function") or {}).get("name") or "",
                "arguments": (call.get("function") or {}).get("arguments") or "{}",
            },
        }
        for n, call in enumerate(message.get("tool_calls") or ())
    ]
    if calls:
        out["tool_calls"] = calls
    if thoughts:
        out["reasoning"] = "".join(thoughts)
    return {
        "id": str(data.get("id") or ""),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": out,
                "finish_reason": finish_reason(data.get("finish_reason")),
                "logprobs": logprobs_from(data.get("logprobs")),
            }
        ],
        "usage": usage_from(data.get("usage")),
    }


class CohereStreamParser:
    """Typed events → chunks; tool calls are numbered in the order they start."""

    def __init__(self, provider: str, model: str) -> None:
        self._provider = provider
        self._model = model
        self._id = ""
        self._created = int(time.time())
        self._started = False
        self._done = False
        self._calls: dict[int, int] = {}

    def _head(self) -> JSONObject:
        return {"id": self._id, "object": "chat.completion.chunk", "created": self._created, "model": self._model}

    def _chunk(self, delta: JSONObject, finish: str | None = None, logprobs: JSONObject | None = None) -> ChatChunk:
        if not self._started:
            self._started = True
            delta = {"role": "assistant", **delta}
        choice: JSONObject = {"index": 0, "delta": delta, "finish_reason": finish}
        if logprobs:
            choice["logprobs"] = logprobs
        return ChatChunk({**self._head(), "choices": [choice]})

    def feed(self, event: UpstreamEvent) -> list[ChatChunk]:
        data = decode_stream_event(event, self._provider)
        if data is None:
            return []
        kind = data.get("type") or event.event
        delta = data.get("delta") or {}
        message = delta.get("message") or {}
        if kind == "message-start":
            self._id = str(data.get("id") or self._id)
            return [self._chunk({"content": ""})]
        if kind in ("content-start", "content-delta"):
            content = message.get("content") or {}
            out: JSONObject = {}
            if content.get("thinking"):
                out["reasoning"] = content["thinking"]
            if content.get("text"):
                out["content"] = content["text"]
            logprobs = logprobs_from([data["logprobs"]]) if isinstance(data.get("logprobs"), dict) else None
            if not out and not logprobs:
                return []
            return [self._chunk(out, logprobs=logprobs)]
        if kind == "tool-plan-delta":
            plan = message.get("tool_plan")
            return [self._chunk({"content": plan})] if plan else []
        if kind in ("tool-call-start", "tool-call-delta"):
            return self._tool_call(kind, data, message.get("tool_calls") or {})
        if kind == "message-end":
            return self._end(delta)
        return []  # content-end, tool-call-end, citation-start/-end, debug

    def _tool_call(self, kind: str, data: JSONObject, call: JSONObject) -> list[ChatChunk]:
        upstream = int(data.get("index") or 0)
        if kind == "tool-call-start":
            self._calls[upstream] = len(self._calls)
        index = self._calls.get(upstream, len(self._calls) - 1)
        function = call.get("function") or {}
        entry: JSONObject = {"index": index, "function": {"arguments": function.get("arguments") or ""}}
        if kind == "tool-call-start":
            entry.update(id=call.get("id") or f"call_{index}", type="function")
            entry["function"]["name"] = function.get("name") or ""
        elif not entry["function"]["arguments"]:
            return []
        return [self._chunk({"tool_calls": [entry]})]

    def _end(self, delta: JSONObject) -> list[ChatChunk]:
        reason = delta.get("finish_reason")
        if delta.get("error") or reason in ("ERROR", "TIMEOUT"):
            detail = delta.get("error") or f"generation ended with {reason}"
            raise UpstreamProtocolError(
                f"{self._provider} reported an error mid-stream: {detail}", provider=self._provider
            )
        self._done = True
        finish = "tool_calls" if self._calls and reason in (None, "COMPLETE") else finish_reason(reason)
        usage = ChatChunk({**self._head(), "choices": [], "usage": usage_from(delta.get("usage"))})
        return [self._chunk({}, finish), usage]

    def close(self) -> list[ChatChunk]:
        if not self._done:
            raise UpstreamProtocolError(
                f"{self._provider} closed the stream before it finished", provider=self._provider
            )
        return []
