"""`Gateway.chat()` and `Gateway.stream()`: the stages every chat request goes through, in order — the map of the
system. Both paths share one list (`build_stages`); the routed call sits in the middle of it.
"""

from __future__ import annotations

import operator
import time
from collections.abc import AsyncIterator

from portico.cache.base import Cache
from portico.cache.replay import chunks_from_completion
from portico.core.knowledge import KnowledgeSearch
from portico.core.types import ChatChunk, ChatRequest, ChatResult
from portico.pipeline.attempts import RoutedCall
from portico.pipeline.caching import CacheStage
from portico.pipeline.guarding import GuardrailCatalog, GuardrailStage, OutputGuardStage
from portico.pipeline.prompts import PromptLookup, PromptStage
from portico.pipeline.rendering import RenderStage
from portico.pipeline.retrieval import RetrievalStage
from portico.pipeline.routing import Router
from portico.pipeline.served import Served
from portico.pipeline.stages import Call, Chunks, Stage
from portico.pipeline.streaming import PriceServed, StreamRelay
from portico.providers.registry import ProviderRegistry
from portico.providers.transport import Transport


def build_stages(
    routed: RoutedCall,
    cache: Cache | None,
    prompts: PromptLookup | None = None,
    guardrails: GuardrailCatalog | None = None,
    knowledge: KnowledgeSearch | None = None,
) -> list[Stage]:
    """The request path, outermost first: a stage sees the request as the stages above it left it, and the answer
    after the stages below it (and the routed call) produced it. New stages take their place here."""
    stages: list[Stage] = [
        PromptStage(prompts),
        RenderStage(),
        RetrievalStage(routed.complete, knowledge),
        GuardrailStage(guardrails),
    ]
    # limits (admission by rate and budget) go here, before the cache: a cached answer still counts as a request
    if cache is not None:
        stages.append(CacheStage(cache, routed.target))
    stages.append(OutputGuardStage(routed.complete))  # after the cache: checks an answer before the cache stores it
    return stages


class Gateway:
    def __init__(
        self,
        providers: ProviderRegistry,
        transport: Transport,
        router: Router,
        cache: Cache | None = None,
        stages: list[Stage] | None = None,
        *,
        prompts: PromptLookup | None = None,
        guardrails: GuardrailCatalog | None = None,
        knowledge: KnowledgeSearch | None = None,
    ) -> None:
        self.providers = providers
        self.routed = RoutedCall(providers, transport, router)
        self.price: PriceServed | None = None
        """Set by the app (the price table lives in observability): a priced stream's usage chunk carries its cost."""
        self.stages = build_stages(self.routed, cache, prompts, guardrails, knowledge) if stages is None else stages
        # One C call reads every trigger attribute; only stages with their own `active` are asked one by one.
        custom = tuple(s for s in self.stages if type(s).active is not Stage.active)
        names = tuple(dict.fromkeys(name for s in self.stages if s not in custom for name in s.triggers))
        self._custom_active = custom
        self._trigger_values = operator.attrgetter(*names, *names) if names else None  # twice: always a tuple
        # Hooks a stage leaves at the default do nothing: skipping them spares a coroutine per active stage.
        self._after = frozenset(s for s in self.stages if type(s).after is not Stage.after)
        self._wraps = frozenset(s for s in self.stages if type(s).after_stream is not Stage.after_stream)

    def use_knowledge(self, search: KnowledgeSearch) -> None:
        """Wire the knowledge service into the retrieval stage: the service embeds through this gateway's
        providers, so it is built after the gateway and attached here."""
        for stage in self.stages:
            if isinstance(stage, RetrievalStage):
                stage.search = search

    async def chat(
        self, request: ChatRequest, served: Served | None = None, *, stages: bool = True
    ) -> tuple[ChatResult, Served]:
        """`served` may be passed in so that the caller still sees the attempts when this raises. A request that
        asks for no stage goes straight to the routed call (`stages=False`: the staged path's own way there)."""
        served = served if served is not None else Served()
        if stages and self._asks_for_stages(request):
            return await self._chat_staged(Call(request, served))
        started = time.perf_counter()
        try:
            result = await self.routed.complete(request, served)
        finally:
            served.upstream_ms = (time.perf_counter() - started) * 1000
        served.dropped_params = result.dropped_params
        served.usage = result.usage
        return result, served

    async def stream(
        self, request: ChatRequest, served: Served | None = None, *, stages: bool = True
    ) -> tuple[AsyncIterator[list[ChatChunk]], Served]:
        """Return once the stream is committed (first content received), so headers can name the serving model."""
        served = served if served is not None else Served()
        if stages and self._asks_for_stages(request):
            return await self._stream_staged(Call(request, served))
        started = time.perf_counter()
        try:
            opened = await self.routed.open_stream(request, served)
        finally:
            served.upstream_ms = (time.perf_counter() - started) * 1000
        return StreamRelay(request, served, self.price).run(opened.first, opened.rest), served

    async def _chat_staged(self, call: Call) -> tuple[ChatResult, Served]:
        ran, result = await self._before(call)
        if result is None:
            result, _ = await self.chat(call.request, call.served, stages=False)
        for stage in reversed(ran):
            if stage in self._after:
                result = await stage.after(call, result)
        return result, call.served

    async def _stream_staged(self, call: Call) -> tuple[AsyncIterator[list[ChatChunk]], Served]:
        ran, hit = await self._before(call)
        if hit is not None:
            replayed = chunks_from_completion(hit.body, call.request.include_usage)
            return self._wrap(call, ran, _replay([[ChatChunk(c)] for c in replayed])), call.served
        if self._wraps.isdisjoint(ran):
            return await self.stream(call.request, call.served, stages=False)
        call.served.relay = False  # a stage reads the chunks: no blocks of undecoded events
        started = time.perf_counter()
        try:
            opened = await self.routed.open_stream(call.request, call.served)
        finally:
            call.served.upstream_ms = (time.perf_counter() - started) * 1000
        wrapped = self._wrap(call, ran, _chain(opened.first, opened.rest))
        return StreamRelay(call.request, call.served, self.price).run([], wrapped), call.served

    def _asks_for_stages(self, request: ChatRequest) -> bool:
        """Whether any stage is active; most requests ask for none and skip `_before` (a coroutine) entirely. A
        model that names no provider fails here (400/404), before any stage spends anything."""
        if request.routing is None:
            self.providers.resolve(request.model)
        if self._trigger_values is not None and any(self._trigger_values(request)):
            return True
        for stage in self._custom_active:  # noqa: SIM110 - any() builds a generator per request, this loop nothing
            if stage.active(request):
                return True
        return False

    async def _before(self, call: Call) -> tuple[list[Stage], ChatResult | None]:
        """Run each active stage's `before`; the stages that ran (their `after` hooks are due) and a result if one
        of them answered. Activity is asked again per stage: an earlier stage may have changed the request."""
        ran: list[Stage] = []
        for stage in self.stages:
            if stage.active(call.request):
                ran.append(stage)
                if (answer := await stage.before(call)) is not None:
                    return ran[:-1], answer
        return ran, None

    def _wrap(self, call: Call, ran: list[Stage], chunks: Chunks) -> Chunks:
        for stage in reversed(ran):
            if stage in self._wraps:
                chunks = stage.after_stream(call, chunks)
        return chunks


async def _replay(batches: list[list[ChatChunk]]) -> AsyncIterator[list[ChatChunk]]:
    for batch in batches:
        yield batch


async def _chain(first: list[list[ChatChunk]], rest: Chunks) -> AsyncIterator[list[ChatChunk]]:
    try:
        for batch in first:
            yield batch
        async for batch in rest:
            yield batch
    finally:
        aclose = getattr(rest, "aclose", None)
        if aclose is not None:
            await aclose()
