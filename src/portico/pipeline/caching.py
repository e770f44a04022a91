"""The exact-match cache stage (AMB-15): read before the routed call, write after a complete answer.

Only complete successful answers are stored: a JSON answer once it is in hand, a stream once it ended cleanly (a
broken or abandoned stream stores nothing). A failing cache never fails a request: reads and writes that raise are
logged and the request is served as if uncached.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

from portico.cache.base import Cache
from portico.cache.keys import cache_key
from portico.cache.replay import completion_from_chunks, decode_entry, encode_entry
from portico.core.types import ChatChunk, ChatRequest, ChatResult, JSONObject, RoutingPlan, Target, Usage
from portico.pipeline.stages import Call, Chunks, Stage
from portico.providers.base import Provider

log = logging.getLogger("portico.cache")

TargetResolver = Callable[[ChatRequest, Target], tuple[Provider, str, ChatRequest]]


class CacheStage(Stage):
    name = "cache"
    triggers = ("cache",)

    def __init__(self, cache: Cache, resolve: TargetResolver) -> None:
        self.cache = cache
        self._resolve = resolve

    async def before(self, call: Call) -> ChatResult | None:
        request, served = call.request, call.served
        provider, model = self._primary(request)
        call.cache_key = key = cache_key(request, provider, model)
        if request.cache is not None and request.cache.force_refresh:
            served.cache_status = "REFRESH"
            return None
        try:
            raw = await self.cache.get(key)
        except Exception:
            log.exception("cache read failed; serving uncached")
            raw = None
        body = decode_entry(raw) if raw is not None else None
        if body is None:
            served.cache_status = "MISS" if self.cache.health().ok else "BYPASS"
            return None
        served.cache_status = "HIT"
        served.provider, served.model = "cache", str(body.get("model") or "")
        served.usage = Usage()
        usage = body.get("usage")
        served.saved_usage = Usage.from_openai(usage) if isinstance(usage, dict) else None
        return ChatResult(body=body, provider="cache", model=served.model)

    async def after(self, call: Call, result: ChatResult) -> ChatResult:
        await self._store(call, result.body)
        return result

    def after_stream(self, call: Call, chunks: Chunks) -> Chunks:
        return self._keep(call, chunks)

    async def _keep(self, call: Call, chunks: Chunks) -> AsyncIterator[list[ChatChunk]]:
        kept: list[JSONObject] = []
        async for batch in chunks:
            kept.extend(chunk.data for chunk in batch)
            yield batch
        completion = completion_from_chunks(kept)  # reached only when the stream ended cleanly
        if completion is not None:
            await self._store(call, completion)

    async def _store(self, call: Call, completion: JSONObject) -> None:
        options = call.request.cache
        if call.cache_key is None or options is None:
            return
        try:
            await self.cache.set(call.cache_key, encode_entry(completion), options.ttl_seconds)
        except Exception:  # the answer is already the client's; losing its cache entry must not cost it
            log.exception("cache write failed; the answer was served uncached")

    def _primary(self, request: ChatRequest) -> tuple[str, str]:
        """The target a request is meant for: retry/timeout settings and fallbacks do not change which answer
        is wanted, so they stay out of the key; only a load-balanced pick keys on the whole balanced set."""
        node: RoutingPlan | Target = request.routing or Target(model=request.model)
        while isinstance(node, RoutingPlan) and node.mode != "loadbalance" and node.targets:
            node = node.targets[0]
        if isinstance(node, RoutingPlan):
            return "routing", _plan_signature(node)
        provider, model, _ = self._resolve(request, node)
        overrides = {k: v for k, v in node.override_params.items() if k != "model"}
        return provider.name, model + (repr(sorted(overrides.items())) if overrides else "")


def _plan_signature(plan: RoutingPlan | Target) -> str:
    if isinstance(plan, Target):
        return f"{plan.provider or ''}:{plan.model}:{sorted(plan.override_params.items())!r}"
    return plan.mode + "(" + ",".join(_plan_signature(t) for t in plan.targets) + ")"
