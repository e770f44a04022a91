"""`Pricing`: what a call cost in USD, from its usage and the price of the provider and model that served it.

Configured prices (`pricing.models`) come before the shipped table (`prices.py`). No price → None, never a guess.
Lookups are memoised per (provider, model) in a bounded dict, so pricing a call costs a dict hit and a few products.
`with_cost` puts a stream's cost into its final usage chunk (JSON answers carry the `x-portico-cost-usd` header).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from portico.config.schema import ModelPrice, PricingConfig
from portico.core.types import ChatChunk, Usage
from portico.observability.prices import ALIASES, BUILTIN, Price

_MEMO_LIMIT = 4096
"""Models come from upstream answers and client requests: the memo is emptied rather than grown past this."""
_VERSION_SUFFIX = re.compile(r"(-\d{8}|-\d{4}-\d{2}-\d{2}|-latest|-v\d+(:\d+)?)$")
"""Dated snapshots and `-latest` aliases bill as their model (claude-3-5-haiku-20241022, gpt-4o-2024-08-06)."""


def price_from_config(entry: ModelPrice) -> Price:
    """A per-hour price is spread over the tokens the server serves in an hour: one rate for every token."""
    if entry.per_hour is not None and entry.tokens_per_hour:
        rate = entry.per_hour / entry.tokens_per_hour * 1_000_000
        return Price(input=rate, output=rate)
    assert entry.input is not None and entry.output is not None  # the schema requires them otherwise
    return Price(entry.input, entry.output, entry.cached_input, entry.cache_write, entry.reasoning)


def cost_of(price: Price, usage: Usage) -> float:
    """USD for one call. OpenAI-shaped usage: prompt tokens include cache reads and writes, completion tokens
    include reasoning tokens, so each kind is taken out of its total and billed at its own rate."""
    prompt, completion = usage.prompt_tokens, usage.completion_tokens
    long = price.long_above is not None and prompt > price.long_above
    base_in = price.input_long if long and price.input_long is not None else price.input
    base_out = price.output_long if long and price.output_long is not None else price.output
    cached, written, reasoning = usage.cached_tokens, usage.cache_creation_tokens, usage.reasoning_tokens
    total = (
        (prompt - cached - written) * base_in
        + cached * (price.cached_input if price.cached_input is not None else base_in)
        + written * (price.cache_write if price.cache_write is not None else base_in)
        + (completion - reasoning) * base_out
        + reasoning * (price.reasoning if price.reasoning is not None else base_out)
    )
    return max(0.0, total) / 1_000_000


class Pricing:
    """Prices by provider entry name and model; `adapters` maps each entry to its adapter type."""

    def __init__(self, config: PricingConfig | None = None, adapters: Mapping[str, str] | None = None) -> None:
        config = config or PricingConfig()
        self._configured = {address: price_from_config(entry) for address, entry in config.models.items()}
        self._builtin = BUILTIN if config.builtin else {}
        self._adapters = dict(adapters or {})
        self._memo: dict[tuple[str, str], Price | None] = {}

    def price(self, provider: str, model: str) -> Price | None:
        key = (provider, model)
        try:
            return self._memo[key]
        except KeyError:
            pass
        if len(self._memo) >= _MEMO_LIMIT:
            self._memo.clear()
        found = self._memo[key] = self._find(provider, model)
        return found

    def cost(self, provider: str, model: str, usage: Usage) -> float | None:
        price = self.price(provider, model)
        return cost_of(price, usage) if price is not None else None

    def provider_of(self, address: str) -> str | None:
        """The configured provider a `provider/model` address names (the one a cache hit would have called)."""
        prefix, sep, _ = address.partition("/")
        return prefix if sep and prefix in self._adapters else None

    def _find(self, provider: str, model: str) -> Price | None:
        adapter = self._adapters.get(provider, provider)
        table = ALIASES.get(adapter, adapter)
        for name in _names(model):
            for address in (f"{provider}/{name}", f"{adapter}/{name}"):
                configured = self._configured.get(address)
                if configured is not None:
                    return configured
            shipped = self._builtin.get(table, {}).get(name)
            if shipped is not None:
                return shipped
        return None


def _names(model: str) -> tuple[str, ...]:
    bare = _VERSION_SUFFIX.sub("", model)
    return (model,) if bare == model or not bare else (model, bare)


def with_cost(chunk: ChatChunk, cost: float | None) -> ChatChunk:
    """The final usage chunk of a stream with `usage.cost_usd` added, for a client that asked for usage.

    A stream's headers leave before its usage is known, so its cost travels in the one place OpenAI's format
    has for per-call accounting: the usage object of the last chunk. The OpenAI SDKs keep unknown usage keys
    (`chunk.usage.cost_usd` in Python); other clients ignore them. Called once per stream, on that chunk only:
    the per-chunk path is untouched. A chunk without usage, or an unknown cost, passes as it is."""
    if cost is None:
        return chunk
    usage = chunk.usage
    if not usage:
        return chunk
    return ChatChunk({**chunk.data, "usage": {**usage, "cost_usd": round(cost, 10)}})
