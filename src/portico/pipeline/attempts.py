"""The routed call: one attempt at one target (a completion, or a stream opened up to its first content), run by
the router's strategies; which target, with which credentials, overrides and per-attempt limits.

Every attempt, failed or not, is appended to `Served.attempts`; the target that answered is named in `Served`.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import replace

from portico.core.errors import ProviderError
from portico.core.types import Attempt, ChatChunk, ChatRequest, ChatResult, ProviderCredentials, Target
from portico.pipeline.routing import AttemptFn, Router
from portico.pipeline.served import OpenedStream, Served
from portico.providers.base import CallOptions, Provider, StreamStart
from portico.providers.registry import ProviderRegistry
from portico.providers.transport import Transport


class RoutedCall:
    def __init__(self, providers: ProviderRegistry, transport: Transport, router: Router) -> None:
        self.providers = providers
        self.transport = transport
        self.router = router

    def complete(self, request: ChatRequest, served: Served) -> Awaitable[ChatResult]:
        """Not a coroutine itself: every await in a request resumes each coroutine frame above it, so the hot
        path hands its caller the attempt (or the router's run) to await directly."""
        attempt = self._completion_attempt(request, served)
        plan = request.routing
        return attempt(_direct_target(request.model), None) if plan is None else self.router.run(plan, attempt)

    def open_stream(self, request: ChatRequest, served: Served) -> Awaitable[OpenedStream]:
        attempt = self._stream_attempt(request, served)
        plan = request.routing
        return attempt(_direct_target(request.model), None) if plan is None else self.router.run(plan, attempt)

    def target(self, request: ChatRequest, target: Target) -> tuple[Provider, str, ChatRequest]:
        """The provider, model and request (with the target's overrides and credentials) one target means."""
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
        """The limits of one attempt (README "Limits of one attempt"): the provider's own, with the routing
        timeout as a completion's whole call or a stream's wait for its first token."""
        if timeout_ms is None:
            return provider.default_options
        return CallOptions.for_attempt(provider.config, timeout_ms / 1000, stream)

    def _completion_attempt(self, request: ChatRequest, served: Served) -> AttemptFn[ChatResult]:
        async def attempt(target: Target, timeout_ms: float | None) -> ChatResult:
            provider, model, req = self.target(request, target)
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
            provider, model, req = self.target(request, target)
            options = self._options(provider, timeout_ms, True)
            start = StreamStart(relay=served.relay)
            started = time.perf_counter()
            stream = provider.stream(req, model, self.transport, options, start)
            first: list[list[ChatChunk]] = []
            try:  # the transport holds the first-token deadline: no second timer here
                async for batch in stream:  # an answer without any content simply ends the loop
                    first.append(batch)
                    if any(chunk.has_content for chunk in batch):
                        break
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


@functools.lru_cache(maxsize=1024)
def _direct_target(model: str) -> Target:
    """The target of a request without routing. Targets are immutable, so one per model is shared: building a
    frozen dataclass per request (~80 bytecodes) cost more than the cache lookup."""
    return Target(model=model)


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
