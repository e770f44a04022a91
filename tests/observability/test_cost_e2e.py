"""Cost as clients and operators meet it: the `x-portico-cost-usd` header on JSON answers, `cost_usd` in the call
log for answers, streams, cache hits, failures and unpriced models, and the cost counters on /metrics."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from portico.config.load import ConfigError, load_settings
from portico.core.types import Usage
from portico.observability.cost import cost_of
from portico.observability.prices import BUILTIN
from tests.conftest import KEY, Stack
from tests.gateway_server import GatewayThread
from tests.storage.test_call_log_e2e import logged_settings, wait_for_record
from tests.upstreams.server import UpstreamThread

GPT_4O = BUILTIN["openai"]["gpt-4o"]
LLAMA = "meta-llama/Llama-3.1-8B-Instruct"
PRICING: Any = {"models": {f"vllm/{LLAMA}": {"per_hour": 3.6, "tokens_per_hour": 1_000_000}}}


@pytest.fixture(scope="module")
def _priced_gateway(
    upstream_thread: UpstreamThread, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayThread]:
    url = f"sqlite:///{tmp_path_factory.mktemp('cost') / 'portico.db'}"
    with GatewayThread(logged_settings(upstream_thread.url, url, pricing=PRICING)) as gateway:
        yield gateway


@pytest.fixture
def priced(_priced_gateway: GatewayThread, upstream_thread: UpstreamThread) -> Iterator[Stack]:
    upstream_thread.state.reset()
    yield Stack(_priced_gateway, upstream_thread)
    upstream_thread.state.reset()


def client(stack: Stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.gateway.url + "/v1", api_key=KEY, max_retries=0)


def ask() -> list[Any]:
    return [{"role": "user", "content": f"what does this cost {uuid.uuid4().hex}"}]


def usage_of(completion: Any) -> Usage:
    return Usage(completion.usage.prompt_tokens, completion.usage.completion_tokens, completion.usage.total_tokens)


def metric(stack: Stack, name: str, **labels: str) -> float:
    text = stack.get("/metrics", key=None).body.decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0


def test_a_json_answer_carries_its_cost_and_the_record_the_same(priced: Stack) -> None:
    raw = client(priced).chat.completions.with_raw_response.create(model="openai/gpt-4o", messages=ask())
    completion = raw.parse()
    expected = cost_of(GPT_4O, usage_of(completion))
    assert expected > 0
    assert float(raw.headers["x-portico-cost-usd"]) == pytest.approx(expected, abs=1e-8)
    record = wait_for_record(priced, raw.headers["x-request-id"])
    assert record["cost_usd"] == pytest.approx(expected)


def test_a_stream_is_priced_in_its_record_not_in_its_headers(priced: Stack) -> None:
    with client(priced).chat.completions.with_streaming_response.create(
        model="openai/gpt-4o", messages=ask(), stream=True, stream_options={"include_usage": True}
    ) as response:
        assert "x-portico-cost-usd" not in response.headers  # sent before the usage exists
        chunks = list(response.parse())
    final = chunks[-1]
    record = wait_for_record(priced, response.headers["x-request-id"])
    assert record["stream"] and record["cost_usd"] == pytest.approx(cost_of(GPT_4O, usage_of(final)))
    assert (final.usage.model_extra or {})["cost_usd"] == pytest.approx(record["cost_usd"])  # the client sees it too


def test_a_stream_that_did_not_ask_for_usage_gets_no_cost_either(priced: Stack) -> None:
    with client(priced).chat.completions.with_streaming_response.create(
        model="openai/gpt-4o", messages=ask(), stream=True
    ) as response:
        chunks = list(response.parse())
    assert chunks and all(chunk.usage is None for chunk in chunks)
    assert wait_for_record(priced, response.headers["x-request-id"])["cost_usd"] > 0


def test_a_cache_hit_costs_nothing_and_records_what_it_saved(priced: Stack) -> None:
    body = {"model": "openai/gpt-4o", "messages": ask(), "cache": {"type": "exact_match", "ttl": 60}}
    first = priced.post("/v2/router/chat/completions", body)
    hit = priced.post("/v2/router/chat/completions", body)
    assert hit.headers["x-portico-cache"] == "HIT" and float(hit.headers["x-portico-cost-usd"]) == 0
    paid = float(first.headers["x-portico-cost-usd"])
    assert paid > 0
    record = wait_for_record(priced, hit.headers["x-request-id"])
    assert record["cost_usd"] == 0 and record["metadata"]["cost_saved_usd"] == pytest.approx(paid)


def test_a_self_hosted_model_priced_per_hour(priced: Stack) -> None:
    raw = client(priced).chat.completions.with_raw_response.create(model=f"vllm/{LLAMA}", messages=ask())
    tokens = usage_of(raw.parse()).total_tokens
    assert float(raw.headers["x-portico-cost-usd"]) == pytest.approx(tokens * 3.6 / 1_000_000, abs=1e-8)


def test_an_unpriced_model_has_no_cost_and_is_counted(priced: Stack) -> None:
    before = metric(priced, "portico_cost_unknown_total", provider="openai")
    raw = client(priced).chat.completions.with_raw_response.create(model="openai/made-up-model", messages=ask())
    assert "x-portico-cost-usd" not in raw.headers
    assert wait_for_record(priced, raw.headers["x-request-id"])["cost_usd"] is None
    assert metric(priced, "portico_cost_unknown_total", provider="openai") == before + 1


def test_a_failed_call_costs_nothing(priced: Stack) -> None:
    failed = priced.post("/v1/chat/completions", {"model": "deadprov/gpt-4o", "messages": ask()})
    assert failed.status >= 500 and "x-portico-cost-usd" not in failed.headers
    assert wait_for_record(priced, failed.headers["x-request-id"])["cost_usd"] == 0


def test_spend_adds_up_on_metrics(priced: Stack) -> None:
    before = metric(priced, "portico_cost_usd_total", provider="openai", model="gpt-4o")
    paid = [
        float(
            priced.post("/v1/chat/completions", {"model": "openai/gpt-4o", "messages": ask()}).headers[
                "x-portico-cost-usd"
            ]
        )
        for _ in range(3)
    ]
    after = metric(priced, "portico_cost_usd_total", provider="openai", model="gpt-4o")
    assert after - before == pytest.approx(sum(paid), abs=1e-7)


def test_check_config_names_a_per_hour_price_without_its_throughput(tmp_path: Any) -> None:
    path = tmp_path / "portico.yaml"
    path.write_text("pricing:\n  models:\n    gpu/llama:\n      per_hour: 2.5\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(str(path))
    assert any("pricing.models" in p and "tokens_per_hour" in p for p in caught.value.problems), caught.value.problems
