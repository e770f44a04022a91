"""/metrics over HTTP: the counters move with each call, whether or not calls are stored."""

from __future__ import annotations

import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import KEY, Stack, stack_settings
from tests.gateway_server import GatewayThread
from tests.upstreams.server import UpstreamThread


def scrape(stack: Stack) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = stack.get("/metrics", key=None)  # Prometheus scrapes without a key
    assert response.status == 200 and response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.body.decode())
        for sample in family.samples
    }


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_counters_move_with_successful_and_failed_calls(stack: Stack) -> None:
    ok = {"provider": "openai", "model": "gpt-4o", "status": "200", "dialect": "openai"}
    failed = {"provider": "openai", "model": "", "status": "502", "dialect": "openai"}
    before = scrape(stack)
    client = openai.OpenAI(base_url=stack.gateway.url + "/v1", api_key=KEY, max_retries=0)
    completions = [
        client.chat.completions.create(model="openai/gpt-4o", messages=[{"role": "user", "content": "count me"}])
        for _ in range(2)
    ]
    stack.upstream.set_mode("broken-model", "status", 500)
    with pytest.raises(openai.APIStatusError):
        client.chat.completions.create(model="openai/broken-model", messages=[{"role": "user", "content": "x"}])
    after = scrape(stack)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("portico_requests_total", **ok) == 2
    assert moved("portico_requests_total", **failed) == 1
    prompt = sum(c.usage.prompt_tokens for c in completions if c.usage)
    assert moved("portico_tokens_total", provider="openai", model="gpt-4o", kind="prompt") == prompt
    assert moved("portico_upstream_attempts_total", provider="openai", model="gpt-4o", status="200") == 2
    assert moved("portico_upstream_attempts_total", provider="openai", model="", status="500") == 1
    assert moved("portico_request_latency_seconds_count", provider="openai") == 3
    assert value(after, "portico_records_dropped_total") == 0


def test_metrics_need_no_key_but_logs_do(stack: Stack) -> None:
    assert stack.get("/metrics", key=None).status == 200
    assert stack.get("/v1/logs", key=None).status == 401


def test_metrics_can_be_set_to_need_a_key(upstream_thread: UpstreamThread) -> None:
    settings = stack_settings(upstream_thread.url, metrics={"require_key": True})
    with GatewayThread(settings) as gateway:
        stack = Stack(gateway, upstream_thread)
        refused = stack.get("/metrics", key=None)
        assert refused.status == 401 and refused.json()["error"]["type"]
        assert stack.get("/metrics").status == 200
