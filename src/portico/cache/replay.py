"""Turn answers into cache entries and back: a stream can fill the cache for a non-stream request and vice versa.

An entry is always a complete `chat.completion` body. A streaming hit is replayed from it as a proper SSE
sequence: role chunk, content (and tool-call) chunk, finish chunk, then the usage chunk only if the client asked.
"""

from __future__ import annotations

from typing import Any

import orjson

from portico.core.types import JSONObject

_ENTRY_VERSION = 1


def encode_entry(completion: JSONObject) -> bytes:
    return orjson.dumps({"v": _ENTRY_VERSION, "completion": completion})


def decode_entry(raw: bytes) -> JSONObject | None:
    """A malformed or foreign entry is a miss, never an error."""
    try:
        entry = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(entry, dict) or entry.get("v") != _ENTRY_VERSION:
        return None
    completion = entry.get("completion")
    return completion if isinstance(completion, dict) else None


def completion_from_chunks(chunks: list[JSONObject]) -> JSONObject | None:
    """Fold a finished stream into one completion; `None` if the stream did not finish every choice."""
    if not chunks:
        return None
    head = chunks[0]
    choices: dict[int, dict[str, Any]] = {}
    usage: Any = None
    for chunk in chunks:
        if chunk.get("usage"):
            usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            index = int(choice.get("index", 0))
            slot = choices.setdefault(
                index, {"role": "assistant", "content": None, "tool_calls": {}, "finish": None, "logprobs": None}
            )
            delta = choice.get("delta") or {}
            if delta.get("role"):
                slot["role"] = delta["role"]
            if delta.get("content") is not None:
                slot["content"] = (slot["content"] or "") + delta["content"]
            if delta.get("refusal") is not None:
                slot["refusal"] = (slot.get("refusal") or "") + delta["refusal"]
            for call in delta.get("tool_calls") or []:
                _merge_tool_call(slot["tool_calls"], call)
            if choice.get("finish_reason"):
                slot["finish"] = choice["finish_reason"]
    if not choices or any(slot["finish"] is None for slot in choices.values()):
        return None
    completion: JSONObject = {
        "id": head.get("id", ""),
        "object": "chat.completion",
        "created": head.get("created", 0),
        "model": head.get("model", ""),
        "choices": [_message(index, choices[index]) for index in sorted(choices)],
    }
    if head.get("system_fingerprint"):
        completion["system_fingerprint"] = head["system_fingerprint"]
    if usage:
        completion["usage"] = usage
    return completion


def _merge_tool_call(calls: dict[int, dict[str, Any]], delta: dict[str, Any]) -> None:
    index = int(delta.get("index", len(calls)))
    call = calls.setdefault(index, {"id": "", "type": "function", "function": {"name": "", "arguments": ""}})
    if delta.get("id"):
        call["id"] = delta["id"]
    function = delta.get("function") or {}
    if function.get("name"):
        call["function"]["name"] += function["name"]
    if function.get("arguments"):
        call["function"]["arguments"] += function["arguments"]


def _message(index: int, slot: dict[str, Any]) -> JSONObject:
    message: JSONObject = {"role": slot["role"], "content": slot["content"]}
    if slot.get("refusal") is not None:
        message["refusal"] = slot["refusal"]
    if slot["tool_calls"]:
        message["tool_calls"] = [slot["tool_calls"][i] for i in sorted(slot["tool_calls"])]
    return {"index": index, "message": message, "finish_reason": slot["finish"], "logprobs": slot["logprobs"]}


def chunks_from_completion(completion: JSONObject, include_usage: bool) -> list[JSONObject]:
    base = {
        "id": completion.get("id", ""),
        "object": "chat.completion.chunk",
        "created": completion.get("created", 0),
        "model": completion.get("model", ""),
    }
    if completion.get("system_fingerprint"):
        base["system_fingerprint"] = completion["system_fingerprint"]
    chunks: list[JSONObject] = []
    for choice in completion.get("choices") or []:
        index = choice.get("index", 0)
        message = choice.get("message") or {}
        role = {"role": message.get("role", "assistant")}
        chunks.append({**base, "choices": [{"index": index, "delta": role, "logprobs": None, "finish_reason": None}]})
        delta: JSONObject = {}
        if message.get("content") is not None:
            delta["content"] = message["content"]
        if message.get("refusal") is not None:
            delta["refusal"] = message["refusal"]
        if message.get("tool_calls"):
            delta["tool_calls"] = [{"index": i, **call} for i, call in enumerate(message["tool_calls"])]
        if delta:
            chunks.append(
                {**base, "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": None}]}
            )
        finish = {"index": index, "delta": {}, "logprobs": None, "finish_reason": choice.get("finish_reason") or "stop"}
        chunks.append({**base, "choices": [finish]})
    if include_usage:
        usage = completion.get("usage") or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        chunks.append({**base, "choices": [], "usage": usage})
    return chunks
