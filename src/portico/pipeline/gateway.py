"""`Gateway.chat()` and `Gateway.stream()`: the ordered stages every chat request goes through — the map of the system.

prepare (templating, features that must not be silently ignored) → cache read → route (retries, fallbacks, load
balancing, timeouts) → provider → cache write. Recording happens at the edge once the response is sent, from the
`Served` summary filled in here.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field, replace
from typing import TypeVar

from portico.cache.base import Cache
from portico.cache.keys import cache_key
from portico.cache.replay import chunks_from_completion, decode_entry, encode_entry
from portico.core.errors import NotFound, ProviderError, RequestError, UpstreamTimeout
from portico.core.types import (
    Attempt,
    ChatChunk,
    ChatRequest,
    ChatResult,
    ProviderCredentials,
    RoutingPlan,
    Target,
    Usage,
)
from portico.pipeline.routing import AttemptFn, Router
from portico.pipeline.streaming import StreamRelay
from portico.pipeline.templating import render_messages
from portico.providers.base import CallOptions, Provider, StreamStart
from portico.providers.registry import ProviderRegistry
from portico.providers.transport import Transport

_T = TypeVar("_T")


@dataclass(slots=True)
class Served:
    """What happened while serving one request: response headers and the call record are built from it."""

    provider: str = ""
    model: str = ""
    attempts: list[Attempt] = field(default_factory=list)
    cache_status: str | None = None
    upstream_ms: float = 0.0
    dropped_params: tuple[str, ...] = ()
    usage: Usage | None = None
    partial: bool = False
    option_index: str | None = None
    """The config position of the target that served (Portkey's `x-portkey-last-used-option-index`)."""


@dataclass(slots=True)
class OpenedStream:
    """A stream committed to one target: its first content has arrived, so no other target can take over."""

    first: list[list[ChatChunk]]
    rest: AsyncIterator[list[ChatChunk]]


class Gateway:
    def __init__(
        self,
        providers: ProviderRegistry,
        transport: Transport,
        router: Router,
        cache: Cache | None = None,
    ) -> None:
        self.providers = providers
        self.transport = transport
        self.router = router
        self.cache = cache
        self._default_options: dict[str, CallOptions] = {}

    async def chat(self, request: ChatRequest, served: Served | None = None) -> tuple[ChatResult, Served]:
        """`served` may be passed in so that the caller still sees the attempts when this raises."""
        served = served if served is not None else Served()
        request = self.prepare(request)
        key = self._cache_key(request) if request.cache is not None else None
        if key is not None and (hit := await self._cache_read(key, request, served)) is not None:
            return hit, served
        started = time.perf_counter()
        try:
            result = await self._route(request, served, self._completion_attempt(request, served))
        finally:
            served.upstream_ms = (time.perf_counter() - started) * 1000
        served.dropped_params = result.dropped_params
        served.usage = result.usage
        if key is not None and self.cache is not None and request.cache is not None:
            await self.cache.set(key, encode_entry(result.body), request.cache.ttl_seconds)
        return result, served

    async def stream(
        self, request: ChatRequest, served: Served | None = None
    ) -> tuple[AsyncIterator[list[ChatChunk]], Served]:
        """Return once the stream is committed (first content received), so headers can name the serving model."""
        served = served if served is not None else Served()
        request = self.prepare(request)
        key = self._cache_key(request) if request.cache is not None else None
        if key is not None and (hit := await self._cache_read(key, request, served)) is not None:
            chunks = chunks_from_completion(hit.body, request.include_usage)
            return _replay([[ChatChunk(c)] for c in chunks]), served
        started = time.perf_counter()
        try:
            opened = await self._route(request, served, self._stream_attempt(request, served))
        finally:
            served.upstream_ms = (time.perf_counter() - started) * 1000
        cache = self.cache if key is not None and request.cache is not None else None
        relay = StreamRelay(request, served, cache, key)
        return relay.run(opened.first, opened.rest), served

    def prepare(self, request: ChatRequest) -> ChatRequest:
        """Stages before any upstream call that may change or refuse the request."""
        if request.prompt_id is not None:
            raise NotFound(f"Prompt '{request.prompt_id}' not found.", code="prompt_not_found", param="prompt.id")
        if request.knowledge_ids:
            raise NotFound(
                f"Knowledge base '{request.knowledge_ids[0]}' not found.",
                code="knowledge_base_not_found",
                param="knowledge_bases",
            )
        if request.guardrails:
            raise RequestError(
                f"Guardrail '{request.guardrails[0][0]}' is not available on this gateway.",
                code="unknown_guardrail",
                param="guardrails",
            )
        if request.variables:
            request = replace(request, body=render_messages(request.body, request.variables, request.template_engine))
        if request.routing is None:
            self.providers.resolve(request.model)  # fail fast (400/404) before cache or upstream
        return request

    def _route(self, request: ChatRequest, served: Served, attempt: AttemptFn[_T]) -> Awaitable[_T]:
        """Not a coroutine itself: every await in a request resumes each coroutine frame above it, so the hot
        path keeps the chain short."""
        plan = request.routing
        if plan is None:
            return attempt(_direct_target(request.model), None)
        return self.router.run(plan, attempt)

    def _target(self, request: ChatRequest, target: Target) -> tuple[Provider, str, ChatRequest]:
        if target.provider is not None:
            provider = self.providers.get(target.provider)
            model = str(target.override_params.get("model") or target.model)
        else:
            provider, model = self.providers.resolve(target.model)
        if target.override_params:
            overrides = {k: v for k, v in target.override_params.items() if k != "model"}
            request = replace(request, body={**request.body, **overrides})
        if target.api_key or target.base_url:
            creds = request.credentials or ProviderCredentials()
            request = replace(
                request,
                credentials=replace(
                    creds, api_key=target.api_key or creds.api_key, base_url=target.base_url or creds.base_url
                ),
            )
        return provider, model, request

    def _options(self, provider: Provider, timeout_ms: float | None, stream: bool) -> CallOptions:
        config = provider.config
        if timeout_ms is None:
            options = self._default_options.get(provider.name)
            if options is None:  # one per provider, read-only: built once instead of per attempt
                options = CallOptions(timeout_s=config.timeout, connect_timeout_s=config.connect_timeout)
                self._default_options[provider.name] = options
            return options
        seconds = timeout_ms / 1000
        if stream:
            return CallOptions(config.timeout, min(config.connect_timeout, seconds), first_event_timeout_s=seconds)
        return CallOptions(seconds, min(config.connect_timeout, seconds))

    def _completion_attempt(self, request: ChatRequest, served: Served) -> AttemptFn[ChatResult]:
        async def attempt(target: Target, timeout_ms: float | None) -> ChatResult:
            provider, model, req = self._target(request, target)
            started = time.perf_counter()
            try:
                result = await provider.complete(req, model, self.transport, self._options(provider, timeout_ms, False))
            except ProviderError as error:
                served.attempts.append(_failed(provider, model, error, started))
                raise
            served.attempts.append(Attempt(provider.name, model, 200, _ms_since(started)))
            served.provider, served.model, served.option_index = provider.name, model, target.label
            return result

        return attempt

    def _stream_attempt(self, request: ChatRequest, served: Served) -> AttemptFn[OpenedStream]:
        async def attempt(target: Target, timeout_ms: float | None) -> OpenedStream:
            provider, model, req = self._target(request, target)
            options = self._options(provider, timeout_ms, True)
            start = StreamStart()
            started = time.perf_counter()
            stream = provider.stream(req, model, self.transport, options, start)
            first: list[list[ChatChunk]] = []
            try:
                async with asyncio.timeout(options.first_event_timeout_s or options.timeout_s):
                    async for batch in stream:  # an answer without any content simply ends the loop
                        first.append(batch)
                        if any(chunk.has_content for chunk in batch):
                            break
            except TimeoutError:
                await _close(stream)
                error = UpstreamTimeout(f"{provider.name} sent no token in time", provider=provider.name)
                served.attempts.append(_failed(provider, model, error, started))
                raise error from None
            except ProviderError as error:
                await _close(stream)
                served.attempts.append(_failed(provider, model, error, started))
                raise
            except BaseException:
                await _close(stream)
                raise
            served.attempts.append(Attempt(provider.name, model, 200, _ms_since(started)))
            served.provider, served.model, served.dropped_params = provider.name, model, start.dropped_params
            served.option_index = target.label
            return OpenedStream(first, stream)

        return attempt

    def _cache_key(self, request: ChatRequest) -> str | None:
        """Called only for a request that asks for caching (the caller checks, sparing a call on every other)."""
        if self.cache is None:
            return None
        provider, model = self._primary(request)
        return cache_key(request, provider, model)

    def _primary(self, request: ChatRequest) -> tuple[str, str]:
        """The target a request is meant for: retry/timeout settings and fallbacks do not change which answer
        is wanted, so they stay out of the key; only a load-balanced pick keys on the whole balanced set."""
        node: RoutingPlan | Target = request.routing or Target(model=request.model)
        while isinstance(node, RoutingPlan) and node.mode != "loadbalance" and node.targets:
            node = node.targets[0]
        if isinstance(node, RoutingPlan):
            return "routing", _plan_signature(node)
        provider, model, _ = self._target(request, node)
        overrides = {k: v for k, v in node.override_params.items() if k != "model"}
        return provider.name, model + (repr(sorted(overrides.items())) if overrides else "")

    async def _cache_read(self, key: str, request: ChatRequest, served: Served) -> ChatResult | None:
        if self.cache is None or request.cache is None:
            return None
        if request.cache.force_refresh:
            served.cache_status = "REFRESH"
            return None
        raw = await self.cache.get(key)
        body = decode_entry(raw) if raw is not None else None
        if body is None:
            served.cache_status = "MISS" if self.cache.health().ok else "BYPASS"
            return None
        served.cache_status = "HIT"
        served.provider, served.model = "cache", str(body.get("model") or "")
        served.usage = Usage()
        return ChatResult(body=body, provider="cache", model=served.model)


@functools.lru_cache(maxsize=1024)
def _direct_target(model: str) -> Target:
    """The target of a request without routing. Targets are immutable, so one per model is shared: building a
    frozen dataclass per request (~80 bytecodes) cost more than the cache lookup."""
    return Target(model=model)


def _plan_signature(plan: RoutingPlan | Target) -> str:
    if isinstance(plan, Target):
        return f"{plan.provider or ''}:{plan.model}:{sorted(plan.override_params.items())!r}"
    return plan.mode + "(" + ",".join(_plan_signature(t) for t in plan.targets) + ")"


def _ms_since(started: float) -> float:
    """Milliseconds to the microsecond. `round(x, 3)` formats the float through its decimal digits (0.54 µs);
    rounding whole microseconds is a third of that."""
    return round((time.perf_counter() - started) * 1_000_000) / 1000


def _failed(provider: Provider, model: str, error: ProviderError, started: float) -> Attempt:
    status = error.upstream_status or error.http_status
    return Attempt(provider.name, model, status, _ms_since(started), error.message[:300])


async def _close(stream: AsyncIterator[list[ChatChunk]]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):
            await aclose()


async def _replay(batches: list[list[ChatChunk]]) -> AsyncIterator[list[ChatChunk]]:
    for batch in batches:
        yield batch
