"""Deployment answers in orq's shape (CHECKLIST RS-D-*, AMB-45..51): an OpenAI completion or chunk stream → the
deployment object, or its chunks: one ULID and one `created` on every chunk, delta text per chunk, then one final
chunk (`is_final`) with `finish_reason`, `finalized`, tool calls, and usage/retrievals only when asked for.
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

import msgspec
import orjson

from portico.core.knowledge import Retrieval
from portico.core.types import ChatChunk, JSONObject, Usage

ORQ_PROVIDERS: Mapping[str, str] = {
    "openai": "openai",
    "azure": "azure",
    "anthropic": "anthropic",
    "gemini": "google-ai",
    "google": "google",
    "vertex": "google",
    "bedrock": "aws",
    "cohere": "cohere",
    "groq": "groq",
    "mistral": "mistral",
    "deepseek": "deepseek",
    "together": "togetherai",
    "perplexity": "perplexity",
    "cerebras": "cerebras",
    "xai": "xai",
    "mock": "orq",
}
"""Adapter → orq's provider enum (AMB-47); every other adapter speaks OpenAI's API: `openailike` (vLLM too)."""
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PAIRS = [a + b for a in _CROCKFORD for b in _CROCKFORD]
"""Every 10-bit value as two base32 characters: a ULID is 13 lookups (half the work of one per character)."""
_40_BITS = (1 << 40) - 1


def orq_provider(adapter: str) -> str:
    return ORQ_PROVIDERS.get(adapter, "openailike")


def new_ulid(now_ms: int | None = None) -> str:
    """A ULID: 48 bits of milliseconds, then 80 random bits, in Crockford's base32 (26 characters).

    Written out, on three small ints instead of one of 128 bits: a loop of shifts on the big one cost 1.8x."""
    t = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    r = random.getrandbits(80)
    hi, lo, p = r >> 40, r & _40_BITS, _PAIRS
    return "".join(
        (
            p[t >> 40 & 1023], p[t >> 30 & 1023], p[t >> 20 & 1023], p[t >> 10 & 1023], p[t & 1023],
            p[hi >> 30], p[hi >> 20 & 1023], p[hi >> 10 & 1023], p[hi & 1023],
            p[lo >> 30], p[lo >> 20 & 1023], p[lo >> 10 & 1023], p[lo & 1023],
        )
    )  # fmt: skip


def new_trace_ids(given: bytes | None = None) -> tuple[str, str]:
    """W3C trace context ids (AMB-51): 32 and 16 lower-case hex digits, never all zero. A client's trace id (a
    `traceparent` header's, or `x-portkey-trace-id` when it is a W3C id) is kept; the span is always new."""
    trace_id = _w3c_trace_id(given) if given else None
    if trace_id is not None:
        return trace_id, f"{random.getrandbits(64) | 1:016x}"
    both = f"{random.getrandbits(192) | _LOW_BITS:048x}"  # one draw for both ids
    return both[:32], both[32:]


_LOW_BITS = 1 << 64 | 1
"""The lowest bit of each id (trace, then span) in one 192-bit draw: neither can be all zero."""


def _w3c_trace_id(given: bytes) -> str | None:
    text = given.decode("latin-1").strip().lower()
    if text.count("-") == 3:  # traceparent: version-traceid-parentid-flags
        text = text.split("-")[1]
    if len(text) == 32 and all(c in "0123456789abcdef" for c in text) and text != "0" * 32:
        return text
    return None


def iso_now(now_ms: int | None = None) -> str:
    """ISO 8601 in UTC with milliseconds and `Z`. The text up to the second is formatted once per second (it was
    two `strftime` calls per answer)."""
    if now_ms is None:
        now_ms = time.time_ns() // 1_000_000
    seconds, ms = divmod(now_ms, 1000)
    second = _SECOND[0]
    if second[0] != seconds:  # replaced whole, so a reader in another thread never sees half of it
        second = _SECOND[0] = (seconds, time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(seconds)))
    return f"{second[1]}{ms:03d}Z"


_SECOND: list[tuple[int, str]] = [(-1, "")]
"""The last second `iso_now` formatted, and its text."""


@dataclass(slots=True)
class ReplyFrame:
    """What every object or chunk of one answer repeats."""

    model: str
    provider: str
    trace_id: str
    span_id: str
    include_usage: bool = False
    include_retrievals: bool = False
    id: str = ""
    created: str = ""
    retrievals: Sequence[Retrieval] | None = None
    """What the retrieval stage found (`Served.retrievals`), shown when `include_retrievals` asks for it."""
    integration_id: str | None = None
    """The configured provider entry that served (orq's integration: a provider with its credentials); unset for
    answers no provider gave (`mock_response`), which then leave the optional field out."""

    def __post_init__(self) -> None:
        now_ms = time.time_ns() // 1_000_000
        self.id = self.id or new_ulid(now_ms)
        self.created = self.created or iso_now(now_ms)

    def head(self, *, final: bool) -> JSONObject:
        head: JSONObject = {
            "id": self.id,
            "created": self.created,
            "object": "chat",
            "model": self.model,
            "provider": self.provider,
            "is_final": final,
            "telemetry": {"trace_id": self.trace_id, "span_id": self.span_id},
        }
        if self.integration_id is not None:
            head["integration_id"] = self.integration_id
        return head

    def final(self, usage: Usage | None, fingerprint: str | None) -> JSONObject:
        out = self.head(final=True)
        out["finalized"] = iso_now()
        out["system_fingerprint"] = fingerprint
        if self.include_retrievals:
            out["retrievals"] = [retrieval_object(r) for r in self.retrievals or ()]
        out["usage"] = usage_object(usage or Usage()) if self.include_usage else None
        return out


def retrieval_object(found: Retrieval) -> JSONObject:
    """One retrieved chunk in orq's shape (RS-D-11, AMB-49): `search_score` always, `rerank_score` only when a
    rerank ran, `page_number` null when unknown. The chunk's other metadata (the datasource's own keys) is not
    part of the shape and stays in the knowledge base."""
    metadata = found.metadata
    page = metadata.get("page_number")
    shown: JSONObject = {
        "file_name": str(metadata.get("file_name") or ""),
        "page_number": page if isinstance(page, int | float) and not isinstance(page, bool) else None,
        "file_type": str(metadata.get("file_type") or ""),
        "search_score": found.search_score,
    }
    if found.rerank_score is not None:
        shown["rerank_score"] = found.rerank_score
    return {"document": found.text, "metadata": shown}


def usage_object(usage: Usage) -> JSONObject:
    return {
        "total_tokens": usage.total_tokens,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


class _Choice(TypedDict, total=False):
    index: Any
    message: Any
    finish_reason: Any


class _Shown(TypedDict, total=False):
    choices: list[_Choice] | None
    system_fingerprint: Any


_SHOWN = msgspec.json.Decoder(_Shown)
"""The parts of an upstream answer the deployment answer shows: decoding only them (msgspec skips the rest) cost
half of decoding the whole answer, which is relayed as its bytes anyway."""


def invoke_body(frame: ReplyFrame, completion: JSONObject | None, raw: bytes | None, usage: Usage) -> JSONObject:
    """The non-streaming answer: the final object, with the upstream's answer as `provider_response`.
    `completion` None: read from `raw`."""
    if completion is None:
        assert raw is not None
        try:
            shown: Any = _SHOWN.decode(raw)  # a dict with those keys: `_Shown` is a TypedDict
            completion = shown
        except msgspec.DecodeError:  # choices that are not objects: shaped as before, from the whole answer
            completion = orjson.loads(raw)
    out = frame.final(usage, completion.get("system_fingerprint"))
    out["provider_response"] = orjson.Fragment(raw) if raw is not None else completion
    out["choices"] = [
        {
            "index": choice.get("index", i),
            "message": _message(choice.get("message") or {}),
            "finish_reason": choice.get("finish_reason"),
        }
        for i, choice in enumerate(completion.get("choices") or ())
    ]
    return out


def mock_body(frame: ReplyFrame, text: str) -> JSONObject:
    """`invoke_options.mock_response` (AMB-50): no upstream was called; usage, when asked for, is zero."""
    out = frame.final(None, None)
    out["provider_response"] = None
    out["choices"] = [{"index": 0, "message": _content(text), "finish_reason": "stop"}]
    return out


async def mock_stream(frame: ReplyFrame, text: str) -> AsyncIterator[list[ChatChunk]]:
    chunk = frame.head(final=False)
    chunk["choices"] = [{"index": 0, "message": _content(text), "finish_reason": None}]
    final = frame.final(None, None)
    final["provider_response"] = None
    final["choices"] = [{"index": 0, "message": _content(""), "finish_reason": "stop"}]
    yield [ChatChunk(chunk), ChatChunk(final)]


def _content(text: str | None) -> JSONObject:
    return {"type": "content", "role": "assistant", "content": text}


def _message(message: Mapping[str, Any]) -> JSONObject:
    content = message.get("content")
    if isinstance(content, list):  # text parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    tool_calls = message.get("tool_calls")
    out: JSONObject
    if tool_calls:
        out = {"type": "tool_calls", "role": "assistant", "content": content, "tool_calls": _tool_calls(tool_calls)}
    else:
        out = _content(content)
    reasoning = message.get("reasoning") or message.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning:
        out["reasoning"] = reasoning
    return out


def _tool_calls(calls: list[Any]) -> list[JSONObject]:
    return [
        {
            "id": call.get("id") or "",
            "index": call.get("index", i),
            "type": "function",
            "function": {
                "name": (call.get("function") or {}).get("name") or "",
                "arguments": (call.get("function") or {}).get("arguments") or "",
            },
        }
        for i, call in enumerate(calls)
    ]


class StreamShaper:
    """OpenAI chunk batches in, deployment chunk batches out. Text goes out as it arrives; tool-call fragments
    are gathered and sent whole on the final chunk (AMB-45); an in-band error object passes through unchanged."""

    def __init__(self, frame: ReplyFrame) -> None:
        self.frame = frame
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.fingerprint: str | None = None
        self.calls: dict[int, JSONObject] = {}

    async def run(self, batches: AsyncIterator[list[ChatChunk]]) -> AsyncIterator[list[ChatChunk]]:
        try:
            async for batch in batches:
                out = [shaped for chunk in batch for shaped in self._shape(chunk)]
                if out:
                    yield out
            yield [ChatChunk(self._final())]
        finally:
            aclose = getattr(batches, "aclose", None)
            if aclose is not None:
                await aclose()

    def _shape(self, chunk: ChatChunk) -> list[ChatChunk]:
        if chunk.is_error:
            return [chunk]
        data = chunk.data
        usage = chunk.usage
        if usage is not None:
            self.usage = Usage.from_openai(usage)
        self.fingerprint = data.get("system_fingerprint") or self.fingerprint
        out = []
        for choice in data.get("choices") or ():
            delta = choice.get("delta") or {}
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
            for call in delta.get("tool_calls") or ():
                self._gather(call)
            text = delta.get("content")
            if text:
                shaped = self.frame.head(final=False)
                shaped["choices"] = [
                    {"index": choice.get("index", 0), "message": _content(text), "finish_reason": None}
                ]
                out.append(ChatChunk(shaped))
        return out

    def _gather(self, call: Mapping[str, Any]) -> None:
        index = int(call.get("index") or 0)
        known = self.calls.setdefault(index, {"id": "", "function": {"name": "", "arguments": ""}, "index": index})
        if call.get("id"):
            known["id"] = call["id"]
        function = call.get("function") or {}
        if function.get("name"):
            known["function"]["name"] += function["name"]
        if function.get("arguments"):
            known["function"]["arguments"] += function["arguments"]

    def _final(self) -> JSONObject:
        final = self.frame.final(self.usage, self.fingerprint)
        final["provider_response"] = None  # "set to null" when streaming (RS-D-12)
        if self.calls:
            calls = _tool_calls([self.calls[i] for i in sorted(self.calls)])
            message: JSONObject = {"type": "tool_calls", "role": "assistant", "content": None, "tool_calls": calls}
        else:
            message = _content("")
        final["choices"] = [{"index": 0, "message": message, "finish_reason": self.finish_reason or "stop"}]
        return final
