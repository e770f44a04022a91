"""Prometheus metrics of the calls the gateway served, in a registry of their own (never the global one).

`observe()` runs once per call on the event loop, so it only adds to plain dicts (a few µs); the Prometheus
families are built from them when `/metrics` is scraped. Failed calls are not labelled by model: a client sending
made-up model names must not grow the label set without bound. Each worker process counts its own calls.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from portico.core.records import CallRecord

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
_TOKEN_KINDS = ("prompt", "completion", "cached", "reasoning")
_BUCKET_LABELS = (*(repr(bound) for bound in LATENCY_BUCKETS), "+Inf")


class _Latency:
    """One provider's latency histogram. `Metrics.observe` fills it in place (no method call per request); the
    count is the sum of the buckets, taken when scraped."""

    __slots__ = ("buckets", "total")

    def __init__(self) -> None:
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)  # the last one is +Inf
        self.total = 0.0

    def cumulative(self) -> list[tuple[str, float]]:
        running, out = 0, []
        for label, count in zip(_BUCKET_LABELS, self.buckets, strict=True):
            running += count
            out.append((label, float(running)))
        return out


class Metrics(Collector):
    def __init__(self) -> None:
        self.requests: defaultdict[tuple[str, str, int, str], int] = defaultdict(int)
        self.latency: defaultdict[str, _Latency] = defaultdict(_Latency)
        self.tokens: defaultdict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        """(provider, model) → tokens of each of `_TOKEN_KINDS`: one lookup per call instead of one per kind."""
        self.attempts: defaultdict[tuple[object, object], int] = defaultdict(int)
        self.cache_events: defaultdict[str, int] = defaultdict(int)
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(self)
        self.records_dropped = Counter(
            "portico_records_dropped",
            "Call records that could not be stored (queue full, write failed, or after shutdown).",
            registry=self.registry,
        )

    def observe(self, record: CallRecord) -> None:
        """Label values are kept as they come (statuses as ints) and turned into strings when scraped."""
        provider = record.provider or ""
        status = record.status
        model = (record.model or "") if status < 400 else ""
        self.requests[provider, model, status, record.dialect] += 1
        seconds = record.latency_ms / 1000
        latency = self.latency[provider]
        latency.buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        latency.total += seconds
        if record.prompt_tokens or record.completion_tokens or record.cached_tokens or record.reasoning_tokens:
            tokens = self.tokens[provider, model]
            tokens[0] += record.prompt_tokens
            tokens[1] += record.completion_tokens
            tokens[2] += record.cached_tokens
            tokens[3] += record.reasoning_tokens
        for attempt in record.attempts:
            self.attempts[attempt.get("provider", ""), attempt.get("status", "")] += 1
        if record.cache_status:
            self.cache_events[record.cache_status] += 1

    def dropped(self, count: int = 1) -> None:
        self.records_dropped.inc(count)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def describe(self) -> list[Metric]:
        return list(self._families())

    def collect(self) -> list[Metric]:
        return list(self._families())

    def _families(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "portico_requests", "Chat calls by outcome.", labels=["provider", "model", "status", "dialect"]
        )
        for (provider, model, status, dialect), value in list(self.requests.items()):
            requests.add_metric([provider, model, str(status), dialect], value)
        yield requests
        latency = HistogramMetricFamily(
            "portico_request_latency_seconds", "Time from request to the end of the response.", labels=["provider"]
        )
        for provider, hist in list(self.latency.items()):
            latency.add_metric([provider], hist.cumulative(), hist.total)
        yield latency
        tokens = [
            ((provider, model, kind), count)
            for (provider, model), counts in list(self.tokens.items())
            for kind, count in zip(_TOKEN_KINDS, counts, strict=True)
            if count
        ]
        yield _counter("portico_tokens", "Tokens reported by upstreams.", ["provider", "model", "kind"], tokens)
        yield _counter(
            "portico_upstream_attempts",
            "Upstream attempts (retries and fallbacks included) by upstream status.",
            ["provider", "status"],
            [((str(provider), str(status)), n) for (provider, status), n in list(self.attempts.items())],
        )
        cache = [((status,), n) for status, n in list(self.cache_events.items())]
        yield _counter("portico_cache_events", "Cache lookups by result.", ["status"], cache)


def _counter(
    name: str, doc: str, labels: list[str], values: Iterable[tuple[Sequence[str], int]]
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=labels)
    for key, value in values:
        family.add_metric(list(key), value)
    return family
