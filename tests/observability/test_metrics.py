"""Metrics live in their own registry and count what the call records say."""

from __future__ import annotations

from prometheus_client import REGISTRY

from portico.observability.metrics import Metrics
from tests.storage.conftest import make_record


def test_observe_counts_requests_tokens_attempts_and_cache_events() -> None:
    metrics = Metrics()
    metrics.observe(make_record(1, cache_status="MISS", cached_tokens=4, reasoning_tokens=2, latency_ms=250))
    metrics.observe(make_record(2, cache_status="HIT", provider="cache", attempts=[]))
    metrics.observe(
        make_record(
            3,
            status=502,
            model="made-up-model",
            prompt_tokens=0,
            completion_tokens=0,
            total_tokens=0,
            attempts=[{"provider": "openai", "model": "x", "status": 500, "latency_ms": 1.0, "error": "boom"}] * 2,
        )
    )
    get = metrics.registry.get_sample_value
    labels = {"provider": "openai", "model": "gpt-4o", "status": "200", "dialect": "openai"}
    assert get("portico_requests_total", labels) == 1
    assert get("portico_requests_total", {**labels, "model": "", "status": "502"}) == 1  # no model label on errors
    assert get("portico_tokens_total", {"provider": "openai", "model": "gpt-4o", "kind": "prompt"}) == 10
    assert get("portico_tokens_total", {"provider": "openai", "model": "gpt-4o", "kind": "completion"}) == 5
    assert get("portico_tokens_total", {"provider": "openai", "model": "gpt-4o", "kind": "cached"}) == 4
    assert get("portico_tokens_total", {"provider": "openai", "model": "gpt-4o", "kind": "reasoning"}) == 2
    assert get("portico_upstream_attempts_total", {"provider": "openai", "status": "200"}) == 1
    assert get("portico_upstream_attempts_total", {"provider": "openai", "status": "500"}) == 2
    assert get("portico_cache_events_total", {"status": "HIT"}) == 1
    assert get("portico_cache_events_total", {"status": "MISS"}) == 1
    assert get("portico_request_latency_seconds_count", {"provider": "openai"}) == 2
    assert get("portico_request_latency_seconds_bucket", {"provider": "openai", "le": "0.25"}) == 2


def test_render_is_prometheus_text_from_its_own_registry() -> None:
    metrics = Metrics()
    metrics.dropped(3)
    payload, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    assert b"portico_records_dropped_total 3.0" in payload
    assert b"# TYPE portico_requests_total counter" in payload
    assert REGISTRY.get_sample_value("portico_records_dropped_total") is None  # the global registry is untouched
    assert Metrics().registry.get_sample_value("portico_records_dropped_total") == 0  # instances do not share
