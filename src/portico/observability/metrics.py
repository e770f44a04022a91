"""Prometheus metrics of the calls the gateway served, in a registry of their own (never the global one), gateway
wide: with several workers each writes its totals to a shared directory and `/metrics` adds every worker's up.

`observe()` runs once per call on the event loop, so it only adds to plain dicts (a few µs); the families are built
when scraped. Labels stay bounded: failed calls carry no model, and past `MAX_MODELS` distinct models the rest
count as `other`, so clients sending made-up model names cannot grow the label set.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from portico.core.records import CallRecord

if TYPE_CHECKING:  # prometheus_client (1.2 MB resident) is imported by the first scrape, not at start-up
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
MAX_MODELS = 200
"""Distinct model label values one worker keeps; later ones are counted as `other`."""
METRICS_DIR_ENV = "PORTICO_METRICS_DIR"
"""Set by `portico serve` for several workers: the directory their totals meet in."""
METRICS_FLUSH_SECONDS = 0.5
_TOKEN_KINDS = ("prompt", "completion", "cached", "reasoning")
_BUCKET_LABELS = (*(repr(bound) for bound in LATENCY_BUCKETS), "+Inf")
_COUNTERS = ("requests", "attempts", "cache_events", "cost", "cost_unknown", "cost_saved", "dropped")


class _Histogram:
    """One label set's histogram. `Metrics.observe` fills it in place; the count is the sum of the buckets."""

    __slots__ = ("buckets", "total")

    def __init__(self) -> None:
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)  # the last one is +Inf
        self.total = 0.0

    def add(self, buckets: Sequence[int], total: float) -> None:
        self.buckets = [a + b for a, b in zip(self.buckets, buckets, strict=True)]
        self.total += total

    def cumulative(self) -> list[tuple[str, float]]:
        running, out = 0, []
        for label, count in zip(_BUCKET_LABELS, self.buckets, strict=True):
            running += count
            out.append((label, float(running)))
        return out


class _Totals:
    """Every counter and histogram of one worker (or, merged, of all of them), keyed by label values."""

    def __init__(self) -> None:
        self.requests: defaultdict[tuple[Any, ...], float] = defaultdict(float)
        self.attempts: defaultdict[tuple[Any, ...], float] = defaultdict(float)
        self.cache_events: defaultdict[tuple[Any, ...], float] = defaultdict(float)
        self.cost: defaultdict[tuple[Any, ...], float] = defaultdict(float)
        self.cost_unknown: defaultdict[tuple[Any, ...], float] = defaultdict(float)
        """Calls with no price for what served them (provider only)."""
        self.cost_saved: defaultdict[tuple[Any, ...], float] = defaultdict(float)
        self.dropped: defaultdict[tuple[Any, ...], float] = defaultdict(float)
        self.tokens: defaultdict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        """(provider, model) → tokens of each of `_TOKEN_KINDS`: one lookup per call instead of one per kind."""
        self.latency: defaultdict[str, _Histogram] = defaultdict(_Histogram)
        self.ttft: defaultdict[str, _Histogram] = defaultdict(_Histogram)

    def snapshot(self) -> dict[str, list[list[Any]]]:
        data: dict[str, list[list[Any]]] = {
            name: [[*key, value] for key, value in list(getattr(self, name).items())] for name in _COUNTERS
        }
        data["tokens"] = [[*key, *counts] for key, counts in list(self.tokens.items())]
        data["latency"] = [[key, h.total, *h.buckets] for key, h in list(self.latency.items())]
        data["ttft"] = [[key, h.total, *h.buckets] for key, h in list(self.ttft.items())]
        return data

    def add(self, data: dict[str, list[list[Any]]]) -> None:
        for name in _COUNTERS:
            counter = getattr(self, name)
            for *key, value in data.get(name, ()):
                counter[tuple(key)] += value
        for provider, model, *counts in data.get("tokens", ()):
            self.tokens[provider, model] = [a + b for a, b in zip(self.tokens[provider, model], counts, strict=True)]
        for name in ("latency", "ttft"):
            histograms = getattr(self, name)
            for key, total, *buckets in data.get(name, ()):
                histograms[key].add(buckets, total)

    def families(self) -> Iterator[Metric]:
        yield _counter(
            "portico_requests", "Chat calls by outcome.", ["provider", "model", "status", "dialect"], self.requests
        )
        yield _histogram(
            "portico_request_latency_seconds", "Time from request to the end of the response.", self.latency
        )
        yield _histogram("portico_ttft_seconds", "Streams: time from request to the first content.", self.ttft)
        tokens = {
            (provider, model, kind): count
            for (provider, model), counts in list(self.tokens.items())
            for kind, count in zip(_TOKEN_KINDS, counts, strict=True)
            if count
        }
        yield _counter("portico_tokens", "Tokens reported by upstreams.", ["provider", "model", "kind"], tokens)
        yield _counter(
            "portico_upstream_attempts",
            "Upstream attempts (retries and fallbacks included) by upstream status (model only when it answered).",
            ["provider", "model", "status"],
            self.attempts,
        )
        yield _counter("portico_cache_events", "Cache lookups by result.", ["status"], self.cache_events)
        yield _counter("portico_cost_usd", "What served calls cost, in USD.", ["provider", "model"], self.cost)
        yield _counter(
            "portico_cost_unknown", "Calls whose cost is unknown (no price).", ["provider"], self.cost_unknown
        )
        yield _counter("portico_cost_saved_usd", "What cache hits saved, in USD.", ["provider"], self.cost_saved)
        yield _counter(
            "portico_records_dropped",
            "Call records that could not be stored (queue full, write failed, or after shutdown).",
            [],
            self.dropped or {(): 0.0},
        )


class Metrics:
    """`share_dir`: where each worker writes its totals (`flush`), for every worker's `/metrics` to add up.
    A prometheus_client collector (`describe`, `collect`) in a registry of its own, built by the first scrape."""

    def __init__(self, share_dir: str | os.PathLike[str] | None = None) -> None:
        self.own = _Totals()
        self._models: set[str] = set()
        self.share_dir = Path(share_dir) if share_dir else None
        self._own_file = self.share_dir / f"worker-{os.getpid()}.json" if self.share_dir else None
        self._registry: CollectorRegistry | None = None

    def observe(self, record: CallRecord) -> None:
        """Label values are kept as they come (statuses as ints) and turned into strings when scraped."""
        own = self.own
        provider = record.provider or ""
        status = record.status
        model = self._model(record.model) if status < 400 and record.model else ""
        own.requests[provider, model, status, record.dialect] += 1
        seconds = record.latency_ms / 1000
        latency = own.latency[provider]
        latency.buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        latency.total += seconds
        if record.ttft_ms is not None:
            ttft = own.ttft[provider]
            ttft.buckets[bisect_left(LATENCY_BUCKETS, record.ttft_ms / 1000)] += 1
            ttft.total += record.ttft_ms / 1000
        if record.prompt_tokens or record.completion_tokens or record.cached_tokens or record.reasoning_tokens:
            tokens = own.tokens[provider, model]
            tokens[0] += record.prompt_tokens
            tokens[1] += record.completion_tokens
            tokens[2] += record.cached_tokens
            tokens[3] += record.reasoning_tokens
        for attempt in record.attempts:
            answered = attempt.get("status", 0)
            tried = self._model(str(attempt.get("model") or "")) if 0 < answered < 400 else ""
            own.attempts[attempt.get("provider", ""), tried, answered] += 1
        if record.cache_status:
            own.cache_events[(record.cache_status,)] += 1
            if record.cache_status == "HIT":
                own.cost_saved[(provider,)] += record.metadata.get("cost_saved_usd") or 0.0
        cost = record.cost_usd
        if cost is None:
            own.cost_unknown[(provider,)] += 1
        elif cost:
            own.cost[provider, model] += cost

    def _model(self, model: str) -> str:
        if model in self._models:
            return model
        if len(self._models) < MAX_MODELS:
            self._models.add(model)
            return model
        return "other"

    def dropped(self, count: int = 1) -> None:
        self.own.dropped[()] += count

    def flush(self) -> None:
        """Write this worker's totals for the others' `/metrics` (atomically: a reader never sees half a file)."""
        if self._own_file is None:
            return
        staged = self._own_file.with_suffix(".tmp")
        staged.write_bytes(orjson.dumps(self.own.snapshot()))
        staged.replace(self._own_file)

    @property
    def registry(self) -> CollectorRegistry:
        if self._registry is None:
            from prometheus_client import CollectorRegistry

            self._registry = CollectorRegistry(auto_describe=True)
            self._registry.register(self)  # a collector by its two methods (`describe`, `collect`)
        return self._registry

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import generate_latest
        from prometheus_client.exposition import CONTENT_TYPE_LATEST

        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def describe(self) -> list[Metric]:
        return list(_Totals().families())

    def collect(self) -> list[Metric]:
        return list(self._totals().families())

    def _totals(self) -> _Totals:
        """This worker's own counts (live), plus every other worker's last flush. A worker that exited keeps its
        file, so the totals never go down."""
        if self.share_dir is None:
            return self.own
        merged = _Totals()
        merged.add(self.own.snapshot())
        for path in self.share_dir.glob("worker-*.json"):
            if path == self._own_file:
                continue
            try:
                merged.add(orjson.loads(path.read_bytes()))
            except (OSError, orjson.JSONDecodeError, ValueError, TypeError):
                continue  # vanished or unreadable: that worker's counts are missing from this scrape only
        return merged


def _counter(name: str, doc: str, labels: list[str], values: Any) -> CounterMetricFamily:
    from prometheus_client.metrics_core import CounterMetricFamily

    family = CounterMetricFamily(name, doc, labels=labels)
    items: Iterable[tuple[Sequence[Any], float]] = list(values.items())
    for key, value in items:
        family.add_metric([str(part) for part in key], value)
    return family


def _histogram(name: str, doc: str, histograms: dict[str, _Histogram]) -> HistogramMetricFamily:
    from prometheus_client.metrics_core import HistogramMetricFamily

    family = HistogramMetricFamily(name, doc, labels=["provider"])
    for provider, hist in list(histograms.items()):
        family.add_metric([provider], hist.cumulative(), hist.total)
    return family
