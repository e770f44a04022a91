"""Prices and cost: the arithmetic per token kind, the lookup order, and how each outcome of a call is priced."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from portico.config.schema import ModelPrice, PricingConfig, Settings
from portico.core.types import Attempt, ChatRequest, Usage
from portico.http.records import record_from_exchange, served_cost
from portico.http.routes.chat import Exchange
from portico.observability.cost import Pricing, cost_of
from portico.observability.prices import BUILTIN, SOURCES, Price
from portico.pipeline.served import Served


def usage(prompt: int, completion: int, cached: int = 0, written: int = 0, reasoning: int = 0) -> Usage:
    return Usage(prompt, completion, prompt + completion, cached, written, reasoning)


def test_each_token_kind_is_billed_at_its_own_rate() -> None:
    price = Price(input=1.0, output=5.0, cached_input=0.1, cache_write=1.25, reasoning=4.0)
    # 1000 prompt tokens of which 300 read from cache and 200 written to it; 500 completion of which 100 reasoning.
    cost = cost_of(price, usage(1000, 500, cached=300, written=200, reasoning=100))
    assert cost == pytest.approx((500 * 1.0 + 300 * 0.1 + 200 * 1.25 + 400 * 5.0 + 100 * 4.0) / 1e6)


def test_unpriced_kinds_fall_back_to_the_base_rates() -> None:
    price = Price(input=2.0, output=8.0)
    assert cost_of(price, usage(1000, 100, cached=400, reasoning=50)) == pytest.approx((1000 * 2 + 100 * 8) / 1e6)


def test_a_long_prompt_is_billed_at_the_long_context_rates() -> None:
    pro = Pricing().price("gemini", "gemini-2.5-pro")
    assert pro is not None
    assert cost_of(pro, usage(200_000, 1000)) == pytest.approx((200_000 * 1.25 + 1000 * 10) / 1e6)
    assert cost_of(pro, usage(200_001, 1000)) == pytest.approx((200_001 * 2.5 + 1000 * 15) / 1e6)


def test_dated_snapshots_and_latest_aliases_bill_as_their_model() -> None:
    pricing = Pricing(adapters={"openai": "openai", "anthropic": "anthropic"})
    assert pricing.price("openai", "gpt-4o-2024-08-06") == BUILTIN["openai"]["gpt-4o"]
    assert pricing.price("anthropic", "claude-3-5-haiku-20241022") == BUILTIN["anthropic"]["claude-3-5-haiku"]
    assert pricing.price("anthropic", "claude-3-7-sonnet-latest") == BUILTIN["anthropic"]["claude-3-7-sonnet"]
    assert pricing.price("openai", "gpt-4o-mini") == BUILTIN["openai"]["gpt-4o-mini"]  # not gpt-4o's price


def test_entries_answer_to_their_adapter_types_prices_and_azure_to_openais() -> None:
    pricing = Pricing(adapters={"eu-openai": "openai", "my-azure": "azure", "google": "google"})
    assert pricing.price("eu-openai", "gpt-4.1") == BUILTIN["openai"]["gpt-4.1"]
    assert pricing.price("my-azure", "gpt-4o") == BUILTIN["openai"]["gpt-4o"]
    assert pricing.price("google", "gemini-2.5-flash") == BUILTIN["gemini"]["gemini-2.5-flash"]
    assert pricing.price("my-azure", "gpt-4o-mini-2024-07-18") == BUILTIN["openai"]["gpt-4o-mini"]


def test_configured_prices_come_before_the_shipped_table_which_can_be_turned_off() -> None:
    config = PricingConfig(
        models={
            "eu-openai/gpt-4o": ModelPrice(input=3.0, output=12.0),
            "openai/gpt-4o-mini": ModelPrice(input=0.2, output=0.7),
        }
    )
    pricing = Pricing(config, adapters={"eu-openai": "openai", "openai": "openai"})
    assert pricing.price("eu-openai", "gpt-4o") == Price(3.0, 12.0)
    assert pricing.price("openai", "gpt-4o") == BUILTIN["openai"]["gpt-4o"]
    assert pricing.price("eu-openai", "gpt-4o-mini") == Price(0.2, 0.7)  # by adapter type
    off = Pricing(PricingConfig(builtin=False), adapters={"openai": "openai"})
    assert off.price("openai", "gpt-4o") is None and off.cost("openai", "gpt-4o", usage(10, 10)) is None


def test_a_price_per_hour_is_spread_over_the_tokens_served_in_an_hour() -> None:
    config = PricingConfig(models={"gpu/llama": ModelPrice(per_hour=3.6, tokens_per_hour=1_800_000)})
    cost = Pricing(config, adapters={"gpu": "vllm"}).cost("gpu", "llama", usage(600, 300))
    assert cost == pytest.approx(900 * 3.6 / 1_800_000)


@pytest.mark.parametrize(
    ("price", "complaint"),
    [
        ({"per_hour": 2.0}, "per_hour needs tokens_per_hour"),
        ({"per_hour": 2.0, "tokens_per_hour": 10, "input": 1.0}, "not both"),
        ({"input": 1.0}, "needs input and output"),
        ({"input": -1.0, "output": 1.0}, "greater than or equal to 0"),
        ({"input": 1.0, "output": 1.0, "cahced_input": 0.1}, "Extra inputs"),
    ],
)
def test_an_unusable_price_is_refused_with_its_reason(price: dict[str, float], complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        Settings.model_validate({"pricing": {"models": {"gpu/llama": price}}})


def test_a_price_key_names_a_provider_and_a_model() -> None:
    with pytest.raises(ValidationError, match="must be 'provider/model'"):
        Settings.model_validate({"pricing": {"models": {"gpt-4o": {"input": 1, "output": 1}}}})


def test_made_up_models_do_not_grow_the_memo_without_bound() -> None:
    pricing = Pricing(adapters={"openai": "openai"})
    for n in range(5000):
        assert pricing.price("openai", f"made-up-{n}") is None
    assert len(pricing._memo) <= 4096


def test_every_shipped_price_names_its_source_and_when_it_was_read() -> None:
    assert set(BUILTIN) == set(SOURCES)
    for source in SOURCES.values():
        assert source.url.startswith("https://") and source.read[:4] == "2026"
    for prices in BUILTIN.values():
        for model, price in prices.items():
            if "embed" in model:  # embedding models bill input tokens only
                assert price.input > 0 and price.output == 0
            else:
                assert 0 < price.input <= price.output


def exchange(served: Served, **changes: object) -> Exchange:
    request = ChatRequest(model="openai/gpt-4o", body={})
    ex = Exchange("/v1/chat/completions", "r1", started=1.0, request=request, finished=1.1, served=served)
    for name, value in changes.items():
        setattr(ex, name, value)
    return ex


PRICING = Pricing(adapters={"openai": "openai"})
GPT_4O = BUILTIN["openai"]["gpt-4o"]


def test_a_served_answer_is_priced_from_its_usage() -> None:
    served = Served(provider="openai", model="gpt-4o", usage=usage(1000, 200, cached=400))
    expected = (600 * 2.5 + 400 * 1.25 + 200 * 10) / 1e6
    assert served_cost(PRICING, served) == pytest.approx(expected)
    assert record_from_exchange(exchange(served), PRICING).cost_usd == pytest.approx(expected)


def test_the_cost_sent_in_the_header_is_the_one_recorded() -> None:
    served = Served(provider="openai", model="gpt-4o", usage=usage(10, 10))
    assert record_from_exchange(exchange(served, cost_usd=0.5), PRICING).cost_usd == 0.5


def test_a_cache_hit_costs_nothing_and_records_what_it_saved() -> None:
    served = Served(provider="cache", model="gpt-4o", cache_status="HIT", usage=Usage(), saved_usage=usage(100, 50))
    record = record_from_exchange(exchange(served), PRICING)
    assert record.cost_usd == 0.0
    assert record.metadata["cost_saved_usd"] == pytest.approx(cost_of(GPT_4O, usage(100, 50)))


def test_a_call_no_upstream_answered_costs_nothing_and_a_cut_stream_without_usage_is_unknown() -> None:
    failed = Served(attempts=[Attempt("openai", "gpt-4o", 500, 3.0, "boom")])
    assert record_from_exchange(exchange(failed, status=502), PRICING).cost_usd == 0.0
    cut = Served(provider="openai", model="gpt-4o", partial=True)
    assert record_from_exchange(exchange(cut, status=499, disconnected=True), PRICING).cost_usd is None


def test_an_unknown_price_is_null_never_a_guess() -> None:
    served = Served(provider="openai", model="made-up-model", usage=usage(10, 10))
    assert record_from_exchange(exchange(served), PRICING).cost_usd is None
