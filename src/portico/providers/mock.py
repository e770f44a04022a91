"""The built-in `mock` provider: deterministic answers without a network, so the quick start and demos work offline.

It echoes the last user message, honours `n`, calls a tool when tools are offered (and `tool_choice` allows),
streams word by word, and reports usage as word counts. Special models: `mock/error-<status>` fails with that
upstream status, `mock/slow-<ms>` waits before answering. Embeddings and rerank (`mock/embed`, `mock/rerank`,
any model in fact) are deterministic and offline (`mock_embed`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson

from portico.core.embeddings import EmbeddingRequest, EmbeddingResult, RerankRequest, RerankResult
from portico.core.errors import UpstreamHTTPError, UpstreamTimeout
from portico.core.types import ChatChunk, ChatRequest, ChatResult, JSONObject
from portico.providers import mock_embed
from portico.providers.base import CallOptions, Provider, StreamStart
from portico.providers.registry import Register, hookimpl
from portico.providers.transport import Transport


class MockProvider(Provider):
    kind = "mock"

    def models(self) -> list[str]:
        return list(self.config.models) or ["echo", "embed", "rerank"]

    async def embed(
        self, request: EmbeddingRequest, model: str, transport: Transport, options: CallOptions
    ) -> EmbeddingResult:
        """Hashed word and trigram features (`mock_embed`); `error-<status>` and `slow-<ms>` behave as in chat."""
        await self._misbehave(model, options)
        return mock_embed.embed(request, model)

    async def rerank(
        self, request: RerankRequest, model: str, transport: Transport, options: CallOptions
    ) -> RerankResult:
        await self._misbehave(model, options)
        return mock_embed.rerank(request)

    async def complete(
        self, request: ChatRequest, model: str, transport: Transport, options: CallOptions
    ) -> ChatResult:
        await self._misbehave(model, options)
        n = int(request.body.get("n") or 1)
        choices = [_choice(request.body, i) for i in range(n)]
        prompt, completion = _usage(request.body, choices)
        body: JSONObject = {
            "id": f"chatcmpl-mock-{time.time_ns():x}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "portico-mock",
            "choices": choices,
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
        }
        return ChatResult(body=body, provider=self.name, model=model)

    async def stream(
        self, request: ChatRequest, model: str, transport: Transport, options: CallOptions, start: StreamStart
    ) -> AsyncIterator[list[ChatChunk]]:
        result = await self.complete(request, model, transport, options)
        head = {k: result.body[k] for k in ("id", "object", "created", "model", "system_fingerprint")}
        head["object"] = "chat.completion.chunk"
        for choice in result.body["choices"]:
            index = choice["index"]
            message = choice["message"]
            yield [_chunk(head, index, {"role": "assistant", "content": ""})]
            if message.get("content"):
                for i, word in enumerate(message["content"].split(" ")):
                    yield [_chunk(head, index, {"content": word if i == 0 else " " + word})]
            for t, call in enumerate(message.get("tool_calls") or ()):
                yield [_chunk(head, index, {"tool_calls": [{"index": t, **call}]})]
            yield [_chunk(head, index, {}, choice["finish_reason"])]
        yield [ChatChunk({**head, "choices": [], "usage": result.body["usage"]})]

    async def _misbehave(self, model: str, options: CallOptions, stream: bool = False) -> None:
        """`slow-<ms>` keeps the same limits as a real upstream: past the attempt's bound it times out."""
        if model.startswith("slow-"):
            delay = int(model[5:] or 0) / 1000
            limit = (options.first_event_timeout_s if stream else None) or options.timeout_s
            if delay > limit:
                await asyncio.sleep(limit)
                raise UpstreamTimeout(f"{self.name} did not answer within {limit:g}s", provider=self.name)
            await asyncio.sleep(delay)
        elif model.startswith("error-"):
            status = int(model[6:] or 500)
            raise UpstreamHTTPError(f"mock error {status}", provider=self.name, upstream_status=status)


def _chunk(head: Mapping[str, Any], index: int, delta: JSONObject, finish: str | None = None) -> ChatChunk:
    return ChatChunk({**head, "choices": [{"index": index, "delta": delta, "finish_reason": finish}]})


def _last_user_text(body: Mapping[str, Any]) -> str:
    for message in reversed(body.get("messages") or ()):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _tool_to_call(body: Mapping[str, Any]) -> JSONObject | None:
    tools = body.get("tools") or []
    choice = body.get("tool_choice")
    if not tools or choice == "none":
        return None
    if any(m.get("role") == "tool" for m in body.get("messages") or ()) and choice != "required":
        return None  # the tool already answered: reply in text, like a real model would
    name = tools[0]["function"]["name"]
    if isinstance(choice, dict):
        name = choice.get("function", {}).get("name", name)
    tool = next((t for t in tools if t["function"]["name"] == name), tools[0])
    params = tool["function"].get("parameters") or {}
    args = {key: _placeholder(spec) for key, spec in (params.get("properties") or {}).items()}
    return {
        "id": f"call_mock_{name}",
        "type": "function",
        "function": {"name": name, "arguments": orjson.dumps(args).decode()},
    }


def _placeholder(spec: Any) -> Any:
    kind = spec.get("type") if isinstance(spec, dict) else None
    if isinstance(spec, dict) and spec.get("enum"):
        return spec["enum"][0]
    return {"string": "mock", "integer": 1, "number": 1, "boolean": True, "array": [], "object": {}}.get(
        str(kind), "mock"
    )


def _choice(body: Mapping[str, Any], index: int) -> JSONObject:
    call = _tool_to_call(body)
    if call is not None:
        message: JSONObject = {"role": "assistant", "content": None, "tool_calls": [call]}
        return {"index": index, "message": message, "finish_reason": "tool_calls", "logprobs": None}
    text = _last_user_text(body)
    suffix = f" (choice {index + 1})" if index else ""
    content = f"Mock reply to: {text}{suffix}" if text else f"Mock reply{suffix}"
    return {
        "index": index,
        "message": {"role": "assistant", "content": content},
        "finish_reason": "stop",
        "logprobs": None,
    }


def _usage(body: Mapping[str, Any], choices: list[JSONObject]) -> tuple[int, int]:
    prompt = sum(len(str(m.get("content") or "").split()) for m in body.get("messages") or ())
    completion = sum(
        len(str(c["message"].get("content") or "").split()) + 5 * bool(c["message"].get("tool_calls")) for c in choices
    )
    return max(prompt, 1), max(completion, 1)


@hookimpl
def register_providers(register: Register) -> None:
    register("mock", MockProvider)
