"""Metrics live in their own registry and count what the call records say."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import REGISTRY

from portico.observability.metrics import MAX_MODELS, Metrics
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
    assert get("portico_upstream_attempts_total", {"provider": "openai", "model": "gpt-4o", "status": "200"}) == 1
    assert get("portico_upstream_attempts_total", {"provider": "openai", "model": "", "status": "500"}) == 2
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


def test_made_up_model_names_cannot_grow_the_label_set() -> None:
    metrics = Metrics()
    for n in range(MAX_MODELS + 50):
        model = f"made-up-{n}"
        attempt = {"provider": "openai", "model": model, "status": 200, "latency_ms": 1.0, "error": None}
        metrics.observe(make_record(n, model=model, attempts=(attempt,)))
    models = {key[1] for key in metrics.own.requests} | {key[1] for key in metrics.own.attempts}
    assert len(models) == MAX_MODELS + 1 and "other" in models
    assert (
        metrics.registry.get_sample_value(
            "portico_requests_total", {"provider": "openai", "model": "other", "status": "200", "dialect": "openai"}
        )
        == 50
    )


def test_workers_totals_add_up_through_the_shared_directory(tmp_path: Path) -> None:
    one, two = Metrics(share_dir=tmp_path), Metrics(share_dir=tmp_path)
    two._own_file = tmp_path / "worker-other.json"  # two workers in one test process
    one.observe(make_record(1, ttft_ms=20.0, stream=True))
    for n in range(3):
        two.observe(make_record(10 + n, cost_usd=0.25))
    two.dropped(2)
    two.flush()
    labels = {"provider": "openai", "model": "gpt-4o", "status": "200", "dialect": "openai"}
    get = one.registry.get_sample_value
    assert get("portico_requests_total", labels) == 4  # its own live count plus the other's last flush
    assert get("portico_cost_usd_total", {"provider": "openai", "model": "gpt-4o"}) == 0.75
    assert get("portico_tokens_total", {"provider": "openai", "model": "gpt-4o", "kind": "prompt"}) == 40
    assert get("portico_request_latency_seconds_count", {"provider": "openai"}) == 4
    assert get("portico_ttft_seconds_count", {"provider": "openai"}) == 1
    assert get("portico_records_dropped_total") == 2
    (tmp_path / "worker-broken.json").write_bytes(b"{not json")
    assert get("portico_requests_total", labels) == 4  # an unreadable file is skipped, not fatal
