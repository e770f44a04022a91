"""The price table shipped with Portico: USD per 1M tokens by adapter type and model, each with the page it was read
from and when. Only prices read from a page are here; a model without one is unpriced (cost null), never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Price:
    """USD per 1M tokens. None: that kind is billed at the base rate (cached input and cache writes at `input`,
    reasoning at `output`). Above `long_above` prompt tokens, the whole call is billed at the `*_long` rates."""

    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None
    reasoning: float | None = None
    long_above: int | None = None
    input_long: float | None = None
    output_long: float | None = None


@dataclass(frozen=True, slots=True)
class Source:
    url: str
    read: str
    """The date (UTC) the prices were read, and how: a secondary page quoting the provider says so."""


ANTHROPIC = Source("https://platform.claude.com/docs/en/docs/about-claude/pricing", "2026-12-02 (provider page)")
OPENAI = Source(
    "https://developers.openai.com/api/docs/pricing",
    "2026-12-02, as quoted by pages citing it (aimodelcalc.pages.dev, chatgptpricing-akr.pages.dev, "
    "aumiqx.com, adk-model's table; the provider page itself was not in reach). Models whose quotes disagree "
    "(gpt-5, o3) are left out",
)
GEMINI = Source(
    "https://ai.google.dev/gemini-api/docs/pricing",
    "2026-12-02, as quoted by pages citing it (deploybase.ai, openrouter.ai, hivebook.wiki); cached-input prices "
    "were not quoted consistently and are left out (cached tokens are billed at the input rate)",
)

_ANTHROPIC_PRICES = {
    # model: (input, 5-minute cache write, cache hit, output)
    "claude-opus-4-6": (5.0, 6.25, 0.50, 25.0),
    "claude-opus-4-5": (5.0, 6.25, 0.50, 25.0),
    "claude-opus-4-1": (15.0, 18.75, 1.50, 75.0),
    "claude-opus-4": (15.0, 18.75, 1.50, 75.0),
    "claude-opus-4-0": (15.0, 18.75, 1.50, 75.0),
    "claude-sonnet-4-6": (3.0, 3.75, 0.30, 15.0),
    "claude-sonnet-4-5": (3.0, 3.75, 0.30, 15.0),
    "claude-sonnet-4": (3.0, 3.75, 0.30, 15.0),
    "claude-sonnet-4-0": (3.0, 3.75, 0.30, 15.0),
    "claude-3-7-sonnet": (3.0, 3.75, 0.30, 15.0),
    "claude-haiku-4-5": (1.0, 1.25, 0.10, 5.0),
    "claude-3-5-haiku": (0.80, 1.0, 0.08, 4.0),
    "claude-3-opus": (15.0, 18.75, 1.50, 75.0),
    "claude-3-haiku": (0.25, 0.30, 0.03, 1.25),
}

_OPENAI_PRICES = {
    # model: (input, cached input, output)
    "gpt-4o": (2.50, 1.25, 10.0),
    "gpt-4o-mini": (0.15, 0.075, 0.60),
    "gpt-4.1": (2.0, 0.50, 8.0),
    "gpt-4.1-mini": (0.40, 0.10, 1.60),
    "gpt-4.1-nano": (0.10, 0.025, 0.40),
}

BUILTIN: dict[str, dict[str, Price]] = {
    "anthropic": {
        model: Price(input=i, output=o, cached_input=hit, cache_write=write)
        for model, (i, write, hit, o) in _ANTHROPIC_PRICES.items()
    },
    "openai": {model: Price(input=i, output=o, cached_input=c) for model, (i, c, o) in _OPENAI_PRICES.items()},
    "gemini": {
        "gemini-2.5-pro": Price(input=1.25, output=10.0, long_above=200_000, input_long=2.50, output_long=15.0),
        "gemini-2.5-flash": Price(input=0.30, output=2.50),
        "gemini-2.5-flash-lite": Price(input=0.10, output=0.40),
    },
}
"""Adapter type → model → price. Azure serves OpenAI's models at OpenAI's list prices (`ALIASES`)."""

SOURCES: dict[str, Source] = {"anthropic": ANTHROPIC, "openai": OPENAI, "gemini": GEMINI}

ALIASES: dict[str, str] = {"azure": "openai", "google": "gemini"}
"""Adapter types priced from another's table."""
