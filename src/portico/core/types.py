"""Domain types that travel through the pipeline, from the HTTP edge to the providers and back.

The request and response *bodies* stay in OpenAI's chat shape (the lingua franca every client and most upstreams
speak), held as JSON objects so that fields the gateway does not model (vLLM sampling parameters, provider
extensions) reach an OpenAI-compatible upstream exactly as the client sent them. Everything the gateway itself
decides on (routing, caching, tracing) is typed here.

Values built once per request or per stream event (`ChatRequest`, `TraceInfo`, `Usage`, `Attempt`, ...) are plain
slotted dataclasses, not frozen ones: a frozen dataclass sets each field through `object.__setattr__`, which made
building a `ChatRequest` 4x slower (8.3 µs against 2.0 µs here). They are still treated as immutable: change one
with `dataclasses.replace`. Routing configuration (`Target`, `RoutingPlan`, ...) stays frozen and hashable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, TypeAlias

import msgspec
import orjson

from portico.core.knowledge import SearchQuery
from portico.core.probe import ChunkProbe, UsageProbe, json_object, probe_chunk, probe_completion, truthy

JSONObject: TypeAlias = dict[str, Any]
"""An OpenAI-shaped JSON object (a chat body, a completion, a chunk). Only providers and wire code look inside."""

Dialect = Literal["openai", "orq", "portkey"]
"""Which API family the client spoke; decides output details such as the default of `include_usage`."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries of one target after its first attempt (so at most `1 + count` attempts)."""

    count: int = 3
    on_codes: frozenset[int] = frozenset({429})
    use_retry_after: bool = True


@dataclass(frozen=True, slots=True)
class Target:
    """One place a request can be served: a model address plus per-target overrides (Portkey targets)."""

    model: str
    weight: float = 1.0
    provider: str | None = None
    override_params: Mapping[str, Any] = field(default_factory=dict)
    api_key: str | None = None
    base_url: str | None = None
    retry: RetryPolicy | None = None
    timeout_ms: float | None = None
    label: str | None = None
    """Where the target sits in the client's config (`config.targets[1]`), echoed as the option that served."""


@dataclass(frozen=True, slots=True)
class ResolvedKey:
    """A virtual key as the routing layer needs it: which configured provider, and the credentials to use."""

    provider: str
    api_key: str | None = None
    base_url: str | None = None


@dataclass(frozen=True, slots=True)
class RoutingPlan:
    """How to serve a request: a strategy over targets, each tried with its retry policy and timeout.

    `mode` single: targets[0] only. fallback: in order until one succeeds. loadbalance: one weighted pick, then
    `fallbacks` in order. Portkey configs nest plans; a nested plan stands in the place of a target.
    """

    mode: Literal["single", "fallback", "loadbalance"] = "single"
    targets: tuple[Target | RoutingPlan, ...] = ()
    retry: RetryPolicy | None = None
    timeout_ms: float | None = None
    on_status_codes: frozenset[int] | None = None
    weight: float = 1.0


@dataclass(slots=True)
class CacheOptions:
    ttl_seconds: int = 1800
    namespace: str | None = None
    force_refresh: bool = False


@dataclass(frozen=True, slots=True)
class TraceInfo:
    """What a request is recorded under; none of it changes the answer (so none of it enters the cache key).

    Frozen, so that the many requests that name nothing share `NO_TRACE` instead of building one each."""

    trace_id: str | None = None
    span_id: str | None = None
    parent_span_id: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    identity: Mapping[str, Any] | None = None
    thread: Mapping[str, Any] | None = None
    name: str | None = None
    """orq's `name` ("the name to display on the trace") or Portkey's `x-portkey-span-name`: the request span's
    name, kept in the call record's `metadata.span_name`."""


NO_TRACE = TraceInfo(metadata=MappingProxyType({}))
"""The trace of a request that names none (read-only all the way down: it is shared)."""


@dataclass(slots=True)
class ProviderCredentials:
    """Credentials that replace a configured provider's own for one request (BYOK, virtual keys, custom hosts)."""

    api_key: str | None = None
    base_url: str | None = None
    extra_headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class GuardrailHook:
    """A Portkey hook (`before_request_hooks` / `input_guardrails`, ...): its checks, by Portkey check id and
    parameters, or `ref`, the id of a built-in or stored guardrail. `deny` refuses the request (446); without it a
    failure is only reported (246)."""

    id: str
    phase: Literal["input", "output"]
    checks: tuple[tuple[str, Mapping[str, Any]], ...] = ()
    ref: str | None = None
    deny: bool = False


@dataclass(frozen=True, slots=True)
class KnowledgeLookup:
    """One `knowledge_bases` entry of a request (RQ-KB-01..09): which base, and the search as the request asked
    for it. `search.text` is the entry's `query`, "" when it gave none (the stage then uses the last user message);
    `search.filter` is the raw `filter_by`, checked by the retrieval stage (the grammar lives above this layer).
    `at` is the entry's place in the body, so that an error names its path (`body.knowledge_bases.0.filter_by`)."""

    knowledge_id: str
    search: SearchQuery
    at: tuple[str | int, ...] = ("body", "knowledge_bases", 0)


@dataclass(slots=True)
class ChatRequest:
    """A validated, normalised chat request.

    `body` is the OpenAI-shaped chat body *without* `model`, `stream` and every gateway-only field (routing, cache,
    variables, identity, ...); unknown keys are kept verbatim for OpenAI-compatible upstreams.
    """

    model: str
    body: JSONObject
    stream: bool = False
    include_usage: bool = False
    dialect: Dialect = "openai"
    routing: RoutingPlan | None = None
    cache: CacheOptions | None = None
    trace: TraceInfo = NO_TRACE
    client_key: str | None = None
    credentials: ProviderCredentials | None = None
    forward_headers: Mapping[str, str] | None = None
    """Client headers to pass upstream (Portkey's `x-portkey-forward-headers`); None when there are none."""
    variables: Mapping[str, Any] | None = None
    template_engine: str | None = None
    """None: the request named none (`text`, unless a stored prompt names its own)."""
    guardrails: tuple[tuple[str, str], ...] = ()
    """(id, execute_on) pairs, in request order."""
    hooks: tuple[GuardrailHook, ...] = ()
    """Portkey's guardrail hooks from `x-portkey-config`, in config order."""
    hook_frames: bool = False
    """Portkey's `x-portkey-strict-open-ai-compliance: false` with hooks: a stream carries `hook_results` frames."""
    pii_values: tuple[str, ...] = ()
    """Values of `orq.inputs` marked `is_pii`: the model gets them, stored records never do (BEH-VAR-05)."""
    prompt_id: str | None = None
    prompt_version: int | Literal["latest"] = "latest"
    knowledge: tuple[KnowledgeLookup, ...] = ()
    """The `knowledge_bases` entries, in request order (the retrieval stage's trigger: empty costs nothing)."""


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0
    cache_creation_tokens: int = 0
    reasoning_tokens: int = 0

    @classmethod
    def from_openai(cls, usage: Mapping[str, Any] | None) -> Usage:
        if not usage:
            return cls()
        prompt = usage.get("prompt_tokens") or 0
        completion = usage.get("completion_tokens") or 0
        pdet = usage.get("prompt_tokens_details") or {}
        cdet = usage.get("completion_tokens_details") or {}
        return cls(  # positional: once per call, and a keyword call costs more
            int(prompt),
            int(completion),
            int(usage.get("total_tokens") or prompt + completion),
            int(pdet.get("cached_tokens") or 0),
            int(pdet.get("cache_creation_tokens") or 0),
            int(cdet.get("reasoning_tokens") or 0),
        )

    def to_openai(self) -> JSONObject:
        out: JSONObject = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }
        if self.cached_tokens or self.cache_creation_tokens:
            out["prompt_tokens_details"] = {
                "cached_tokens": self.cached_tokens,
                "cache_creation_tokens": self.cache_creation_tokens,
            }
        if self.reasoning_tokens:
            out["completion_tokens_details"] = {"reasoning_tokens": self.reasoning_tokens}
        return out


def _usage_of(top: UsageProbe | None) -> Usage:
    if top is None:
        return Usage()
    prompt = top.prompt_tokens or 0
    completion = top.completion_tokens or 0
    pdet, cdet = top.prompt_tokens_details, top.completion_tokens_details
    return Usage(
        prompt,
        completion,
        top.total_tokens or prompt + completion,
        (pdet.cached_tokens or 0) if pdet else 0,
        (pdet.cache_creation_tokens or 0) if pdet else 0,
        (cdet.reasoning_tokens or 0) if cdet else 0,
    )


class ChatResult:
    """A complete answer in the OpenAI `chat.completion` shape.

    `raw` holds the upstream bytes when they already are that shape and may be relayed unchanged (the cheap path
    for OpenAI-compatible upstreams); then `body` is decoded only if something asks for it (a cache write, a
    guardrail). Decoding a whole answer into objects just to read its usage cost twice the probe that
    `relayed()` runs. Treated as immutable once built.
    """

    __slots__ = ("_body", "_usage", "dropped_params", "model", "provider", "raw")

    def __init__(
        self,
        body: JSONObject | None = None,
        raw: bytes | None = None,
        provider: str = "",
        model: str = "",
        dropped_params: tuple[str, ...] = (),
        usage: Usage | None = None,
    ) -> None:
        if body is None and raw is None:
            raise ValueError("a ChatResult needs a body or its raw bytes")
        self._body = body
        self.raw = raw
        self.provider = provider
        self.model = model
        self.dropped_params = dropped_params
        self._usage = usage

    @classmethod
    def relayed(cls, raw: bytes, model: str) -> ChatResult:
        """An OpenAI-shaped answer kept as its bytes. Raises ValueError unless it is a JSON object whose
        `choices` is a list; the caller then decodes it the slow way to say exactly what is wrong."""
        try:
            top = probe_completion(raw)
        except msgspec.DecodeError as exc:  # ValidationError included: the probe types `choices` as a list
            raise ValueError(str(exc)) from None
        return cls(None, raw, model=top.model or model, usage=_usage_of(top.usage))

    @property
    def body(self) -> JSONObject:
        if self._body is None:
            assert self.raw is not None
            self._body = orjson.loads(self.raw)
        return self._body

    @property
    def usage(self) -> Usage:
        if self._usage is None:
            self._usage = Usage.from_openai(self.body.get("usage"))
        return self._usage

    def __repr__(self) -> str:
        return f"ChatResult(provider={self.provider!r}, model={self.model!r}, body={self.body!r})"


class ChatChunk:
    """One `chat.completion.chunk` (or an in-band error object); `raw` is its ready SSE frame when unchanged.

    A chunk relayed from an OpenAI-shaped upstream (`relayed()`) is not decoded: a probe reads only whether it
    has choices, usage or an error, and `data` decodes it on first use (to cache it, or to strip its usage).
    Decoding every chunk was an eighth of a stream's CPU here. Treated as immutable once built.
    """

    __slots__ = ("_data", "_payload", "_top", "has_usage_key", "is_error", "raw")

    has_usage_key: bool
    """The chunk has a `usage` key (even a null one): the relay must look at it before passing it on."""
    is_error: bool
    """An error object in place of a chunk (an error key and no choices)."""

    def __init__(self, data: JSONObject, raw: bytes | None = None) -> None:
        self._data: JSONObject | None = data
        self.raw = raw
        self._payload = b""
        self._top: ChunkProbe | None = None
        self.has_usage_key = "usage" in data
        self.is_error = "error" in data and not data.get("choices")

    @classmethod
    def relayed(cls, payload: bytes) -> ChatChunk | None:
        """The chunk an SSE event's JSON payload holds, framed as received; None when it is not a JSON object.
        Raises ValueError when it is not JSON at all."""
        try:
            top = probe_chunk(payload)
        except msgspec.ValidationError:
            return None
        except msgspec.DecodeError as exc:
            raise ValueError(str(exc)) from None
        chunk = cls.__new__(cls)
        chunk._data = None
        chunk._payload = payload
        chunk._top = top
        chunk.raw = b"data: " + payload + b"\n\n"
        # Attributes, not properties: both are asked of every chunk, and a property call was ~12 bytecodes each.
        chunk.has_usage_key = bool(top.usage)
        chunk.is_error = bool(top.error) and not truthy(top.choices)
        return chunk

    @property
    def data(self) -> JSONObject:
        if self._data is None:
            self._data = orjson.loads(self._payload)
        return self._data

    @property
    def has_choices(self) -> bool:
        top = self._top
        return truthy(top.choices) if top is not None else bool(self.data.get("choices"))

    @property
    def usage(self) -> JSONObject | None:
        """The chunk's usage object when it carries a non-empty one."""
        top = self._top
        if top is not None:
            return json_object(top.usage)
        usage = self.data.get("usage")
        return usage if isinstance(usage, dict) and usage else None

    @property
    def has_content(self) -> bool:
        """True once the chunk carries something the client must not see twice (text, tool calls, reasoning)."""
        for choice in self.data.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("content") or delta.get("tool_calls") or delta.get("reasoning") or delta.get("refusal"):
                return True
            if choice.get("finish_reason"):
                return True
        return False

    def __repr__(self) -> str:
        return f"ChatChunk({self.data!r})"


class LastBatch(list[ChatChunk]):
    """A stream's last batch of chunks: the upstream's end (`[DONE]`) came in the same read, so nothing follows.
    The HTTP layer sends it and the end of the response in one write (one ASGI send and one system call less per
    stream). Only the relaying OpenAI-compatible path marks one; a layer that builds a new list drops the mark,
    and the end then goes out on its own as before."""

    __slots__ = ()


@dataclass(slots=True)
class Attempt:
    """One upstream attempt, as the trace and the response headers report it."""

    provider: str
    model: str
    status: int
    latency_ms: float
    error: str | None = None
