"""Embeddings and rerank through the providers: the `/v1/embeddings` route and the knowledge service both come here.

`Embeddings` resolves `provider/model` like a chat model, splits the input into the provider's largest batches,
and runs each batch as a routed call (the router's retries and fallbacks, the provider's health). The knowledge
path (`embed`, `rerank`: the `core.knowledge.Embedder` seam) retries transient failures by default and writes one
call-log record per upstream call, so an ingest's embedding calls are visible and priced like chat calls.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import TypeVar

import orjson

from portico.cache.base import Cache
from portico.core.embeddings import EmbeddingJob, EmbeddingRequest, EmbeddingResult, RerankRequest, RerankResult
from portico.core.errors import PorticoError, ProviderError
from portico.core.ids import time_ordered_id
from portico.core.records import CallRecord
from portico.core.types import Attempt, ProviderCredentials, RetryPolicy, RoutingPlan, Target, Usage
from portico.pipeline.routing import Router
from portico.pipeline.served import Served
from portico.providers.base import CallOptions, Provider
from portico.providers.registry import ProviderRegistry
from portico.providers.transport import Transport

log = logging.getLogger("portico.embeddings")
T = TypeVar("T")
ProviderCall = Callable[[Provider, str, CallOptions, ProviderCredentials | None], Awaitable[T]]
RecordSink = Callable[[CallRecord], None]
PriceFn = Callable[[str, str, Usage], float | None]

KNOWLEDGE_RETRY = RetryPolicy(count=2, on_codes=frozenset({408, 429, 500, 502, 503, 504}))
"""The knowledge path has no client to retry for it: a rate limit or a blip mid-ingest must not fail the file."""
BATCH_CONCURRENCY = 4
"""Batches of one input in flight at once: fast enough for an ingest, gentle on an upstream's rate limits."""


class Embeddings:
    """Implements `core.knowledge.Embedder`; `create` serves `POST /v1/embeddings`."""

    def __init__(
        self,
        providers: ProviderRegistry,
        transport: Transport,
        router: Router,
        *,
        cache: Cache | None = None,
        record: RecordSink | None = None,
        price: PriceFn | None = None,
        retry: RetryPolicy | None = KNOWLEDGE_RETRY,
    ) -> None:
        self.providers = providers
        self.transport = transport
        self.router = router
        self.cache = cache
        self.record = record
        self.price = price
        self.retry = retry

    async def create(self, job: EmbeddingJob, served: Served) -> EmbeddingResult:
        """All of `job`'s texts, in order, as one result; every attempt of every batch lands in `served`."""
        key = self._cache_key(job) if job.cache is not None and self.cache is not None else None
        if key is not None and (hit := await self._cached(key, served)) is not None:
            return hit
        started = time.perf_counter()
        try:
            result = await self._embed_all(job.model, job.routing, job.request, served)
        finally:
            served.upstream_ms = (time.perf_counter() - started) * 1000
        served.usage = Usage(prompt_tokens=result.prompt_tokens, total_tokens=result.prompt_tokens)
        if key is not None and job.cache is not None:
            await self._store(key, result, job.cache.ttl_seconds)
        return result

    async def embed(self, model: str, texts: Sequence[str], input_type: str | None = None) -> list[list[float]]:
        """The knowledge service's call: `input_type` `search_query` for a search, else documents."""
        if not texts:
            return []
        request = EmbeddingRequest(tuple(texts), input_type="search_query" if input_type == "search_query" else None)
        plan = self._plan(model)

        async def batch(part: EmbeddingRequest) -> EmbeddingResult:
            return await self._recorded("knowledge:embeddings", model, part, plan)

        parts = await _bounded([batch(p) for p in self._batches(model, None, request)])
        return [vector for part in parts for vector in part.vectors]

    async def rerank(self, model: str, query: str, documents: Sequence[str], top_n: int) -> list[tuple[int, float]]:
        if not documents:
            return []
        request = RerankRequest(query, tuple(documents), max(1, top_n))
        served = Served()
        started = time.perf_counter()
        error: PorticoError | None = None
        try:
            result = await self._routed(self._plan(model), served, _rerank_call(request, self.transport))
            served.usage = Usage(prompt_tokens=result.tokens, total_tokens=result.tokens)
            return result.results
        except PorticoError as exc:
            error = exc
            raise
        finally:
            self._log("knowledge:rerank", model, served, started, error)

    async def _recorded(self, path: str, model: str, part: EmbeddingRequest, plan: RoutingPlan) -> EmbeddingResult:
        served = Served()
        started = time.perf_counter()
        error: PorticoError | None = None
        try:
            result = await self._routed(plan, served, _embed_call(part, self.transport))
            served.usage = Usage(prompt_tokens=result.prompt_tokens, total_tokens=result.prompt_tokens)
            return result
        except PorticoError as exc:
            error = exc
            raise
        finally:
            self._log(path, model, served, started, error)

    async def _embed_all(
        self, model: str, routing: RoutingPlan | None, request: EmbeddingRequest, served: Served
    ) -> EmbeddingResult:
        plan = routing or RoutingPlan(targets=(Target(model=model),))
        parts = self._batches(model, routing, request)
        done = await _bounded([self._routed(plan, served, _embed_call(part, self.transport)) for part in parts])
        vectors = [vector for part in done for vector in part.vectors]
        return EmbeddingResult(vectors, sum(p.prompt_tokens for p in done), done[-1].model or served.model)

    def _plan(self, model: str) -> RoutingPlan:
        return RoutingPlan(targets=(Target(model=model),), retry=self.retry)

    def _batches(self, model: str, routing: RoutingPlan | None, request: EmbeddingRequest) -> list[EmbeddingRequest]:
        """The smallest batch limit among the providers the request may reach, so any fallback takes any batch."""
        size = min((p.max_embed_batch for p in self._providers_of(model, routing)), default=2048)
        texts = request.texts
        if len(texts) <= size:
            return [request]
        return [_with_texts(request, texts[i : i + size]) for i in range(0, len(texts), size)]

    def _providers_of(self, model: str, routing: RoutingPlan | None) -> list[Provider]:
        """Resolves the primary model now, so an unknown model fails (400/404) before any upstream call."""
        found = [self.providers.resolve(model)[0]] if routing is None else []
        for target in _targets(routing):
            try:
                found.append(self._target(target)[0])
            except PorticoError:
                continue  # reported when (if) the routing reaches it
        return found

    def _target(self, target: Target) -> tuple[Provider, str]:
        if target.provider is not None:
            return self.providers.get(target.provider), str(target.override_params.get("model") or target.model)
        return self.providers.resolve(target.model)

    async def _routed(self, plan: RoutingPlan, served: Served, call: ProviderCall[T]) -> T:
        async def attempt(target: Target, timeout_ms: float | None) -> T:
            provider, model = self._target(target)
            options = (
                provider.default_options
                if timeout_ms is None
                else CallOptions.for_attempt(provider.config, timeout_ms / 1000, stream=False)
            )
            credentials = None
            if target.api_key or target.base_url:
                credentials = ProviderCredentials(api_key=target.api_key, base_url=target.base_url)
            started = time.perf_counter()
            try:
                result = await call(provider, model, options, credentials)
            except ProviderError as error:
                status = error.upstream_status or error.http_status
                served.attempts.append(Attempt(provider.name, model, status, _ms(started), error.message[:300]))
                raise
            served.attempts.append(Attempt(provider.name, model, 200, _ms(started)))
            served.provider, served.model, served.option_index = provider.name, model, target.label
            return result

        return await self.router.run(plan, attempt)

    def _cache_key(self, job: EmbeddingJob) -> str:
        request = job.request
        namespace = job.cache.namespace if job.cache is not None else None
        parts = [job.model, request.dimensions, request.input_type, namespace, list(request.texts)]
        return "emb:" + hashlib.sha256(orjson.dumps(parts)).hexdigest()

    async def _cached(self, key: str, served: Served) -> EmbeddingResult | None:
        """A hit answers without any upstream call; a failing cache is a miss (never a failed request)."""
        assert self.cache is not None
        try:
            raw = await self.cache.get(key)
            data = orjson.loads(raw) if raw is not None else None
        except Exception:
            log.exception("embeddings cache read failed; serving uncached")
            data = None
        if not isinstance(data, dict):
            served.cache_status = "MISS" if self.cache.health().ok else "BYPASS"
            return None
        served.cache_status = "HIT"
        served.provider, served.model = "cache", str(data["model"])
        served.usage = Usage()
        served.saved_usage = Usage(prompt_tokens=int(data["tokens"]), total_tokens=int(data["tokens"]))
        return EmbeddingResult(data["vectors"], 0, served.model)

    async def _store(self, key: str, result: EmbeddingResult, ttl: int) -> None:
        assert self.cache is not None
        entry = {"model": result.model, "tokens": result.prompt_tokens, "vectors": result.vectors}
        try:
            await self.cache.set(key, orjson.dumps(entry), ttl)
        except Exception:
            log.exception("embeddings cache write failed")

    def _log(self, path: str, model: str, served: Served, started: float, error: PorticoError | None) -> None:
        """One call-log record of a knowledge-path call; a failure to record never fails the call."""
        if self.record is None:
            return
        try:
            self.record(self._record_of(path, model, served, started, error))
        except Exception:
            log.exception("could not record an embeddings call")

    def _record_of(
        self, path: str, model: str, served: Served, started: float, error: PorticoError | None
    ) -> CallRecord:
        latency_ms = (time.perf_counter() - started) * 1000
        usage = served.usage or Usage()
        cost = None
        if self.price is not None and served.provider and error is None:
            cost = self.price(served.provider, served.model, usage)
        provider = served.provider or (error.provider if isinstance(error, ProviderError) else None)
        return CallRecord(
            id=time_ordered_id(),
            created_at=datetime.fromtimestamp(time.time() - latency_ms / 1000, UTC),
            request_id=time_ordered_id(),
            path=path,
            dialect="internal",
            status=200 if error is None else error.http_status,
            provider=provider,
            model=served.model or model.partition("/")[2] or model,
            requested_model=model,
            error_type=error.type if error is not None else None,
            error_message=error.message[:2000] if error is not None else None,
            prompt_tokens=usage.prompt_tokens,
            total_tokens=usage.total_tokens,
            cost_usd=cost,
            latency_ms=latency_ms,
            attempts=tuple(
                {
                    "provider": a.provider,
                    "model": a.model,
                    "status": a.status,
                    "latency_ms": a.latency_ms,
                    "error": a.error,
                }
                for a in served.attempts
            ),
        )


def _embed_call(request: EmbeddingRequest, transport: Transport) -> ProviderCall[EmbeddingResult]:
    async def call(
        provider: Provider, model: str, options: CallOptions, credentials: ProviderCredentials | None
    ) -> EmbeddingResult:
        sent = request if credentials is None else _with_credentials(request, credentials)
        return await provider.embed(sent, model, transport, options)

    return call


def _rerank_call(request: RerankRequest, transport: Transport) -> ProviderCall[RerankResult]:
    async def call(
        provider: Provider, model: str, options: CallOptions, credentials: ProviderCredentials | None
    ) -> RerankResult:
        sent = request
        if credentials is not None:
            sent = RerankRequest(request.query, request.documents, request.top_n, credentials)
        return await provider.rerank(sent, model, transport, options)

    return call


def _with_texts(request: EmbeddingRequest, texts: tuple[str, ...]) -> EmbeddingRequest:
    return EmbeddingRequest(texts, request.dimensions, request.input_type, request.user, request.credentials)


def _with_credentials(request: EmbeddingRequest, credentials: ProviderCredentials) -> EmbeddingRequest:
    return EmbeddingRequest(request.texts, request.dimensions, request.input_type, request.user, credentials)


def _targets(plan: RoutingPlan | None) -> list[Target]:
    if plan is None:
        return []
    found: list[Target] = []
    for node in plan.targets:
        found.extend([node] if isinstance(node, Target) else _targets(node))
    return found


async def _bounded(calls: list[Awaitable[T]]) -> list[T]:
    """Run `calls` at most `BATCH_CONCURRENCY` at a time, results in order; the first failure cancels the rest."""
    if len(calls) == 1:
        return [await calls[0]]
    gate = asyncio.Semaphore(BATCH_CONCURRENCY)

    async def gated(call: Awaitable[T]) -> T:
        async with gate:
            return await call

    tasks = [asyncio.ensure_future(gated(call)) for call in calls]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1_000_000) / 1000


def call_log(*sinks: Callable[[CallRecord], object] | None) -> RecordSink:
    """The knowledge path's record sink: each record to every given sink (metrics, the call log); None skipped."""
    active = [sink for sink in sinks if sink is not None]

    def record(call: CallRecord) -> None:
        for sink in active:
            sink(call)

    return record
