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
    "aumiqx.com, adk-model's table, nicolalazzari.ai; the provider page itself was not in reach). o3 at the June "
    "2025 price the recent quotes agree on; gpt-5's cached-input rate is left out (the quotes disagree)",
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
    "o3": (2.0, 1.0, 8.0),
}
_OPENAI_UNCACHED = {
    # model: (input, output). The quotes agree on these and disagree on the cached-input rate (0.625 and 0.125
    # for gpt-5): cached tokens are billed at the input rate until a provider page settles it.
    "gpt-5": (1.25, 10.0),
    "gpt-5-mini": (0.25, 2.0),
    "gpt-5-nano": (0.05, 0.40),
}
_OPENAI_EMBEDDINGS = {"text-embedding-3-small": 0.02, "text-embedding-3-large": 0.13}
"""Embedding models bill input tokens only."""

XAI = Source(
    "https://docs.x.ai/developers/models",
    "2026-12-02 (provider page, and its 2025-06-02 archive at archive.fo/dYUtw for the grok-3 family; grok-4-0709 "
    "and grok-4.20 are left out: the provider page shows no price for the first, and quotes disagree on the second)",
)
_XAI_PRICES = {
    # model: (input, cached input, output)
    "grok-4.7": (2.0, None, 6.0),
    "grok-4-1-fast-reasoning": (0.20, 0.05, 0.50),
    "grok-4-1-fast-non-reasoning": (0.20, 0.05, 0.50),
    "grok-3": (3.0, 0.75, 15.0),
    "grok-3-fast": (5.0, 1.25, 25.0),
    "grok-3-mini": (0.30, 0.075, 0.50),
    "grok-3-mini-fast": (0.60, 0.15, 4.0),
}
DEEPSEEK = Source(
    "https://api-docs.deepseek.com/quick_start/pricing-details-usd",
    "2026-12-02 (provider page as stored; the page carries no date). Later pages describe V4 models with "
    "peak/off-peak rates: those are not in this table",
)
_DEEPSEEK_PRICES = {
    # model: (cache-miss input, cache-hit input, output); reasoning (CoT) tokens bill as output
    "deepseek-chat": (0.27, 0.07, 1.10),
    "deepseek-reasoner": (0.55, 0.14, 2.19),
}
GROQ = Source(
    "https://groq.com/pricing",
    "2026-12-02, as quoted by pages citing it (tokenmix.ai 2026-06-04, the Mirascope cost table, "
    "jeremylongshore's groq-cost-tuning); the provider page itself was not in reach",
)
_GROQ_PRICES = {
    # model: (input, cached input, output)
    "llama-3.3-70b-versatile": (0.59, None, 0.79),
    "llama-3.1-8b-instant": (0.05, None, 0.08),
    "openai/gpt-oss-120b": (0.15, 0.075, 0.60),
}
MISTRAL = Source(
    "https://mistral.ai/pricing",
    "2026-12-02, as quoted by pages citing it (developer.puter.com 2026-06, lava.so's Mistral table); only the "
    "models both quote alike. mistral-large-latest and mistral-small-latest are left out: the quotes give the "
    "previous generation's prices next to the current one's",
)
_MISTRAL_PRICES = {
    # model: (input, output); Mistral publishes no cached-input rate
    "mistral-medium-latest": (1.50, 7.50),
    "magistral-medium-latest": (2.0, 5.0),
    "magistral-small-latest": (0.50, 1.50),
}
NOT_FOUND = (
    "2026-12-02: no price page (the provider's or a page quoting it) with figures was in reach for Cohere, "
    "Together, Fireworks, AWS Bedrock, Mistral's embeddings, Gemini's text-embedding-004 or OpenAI's o4-mini: "
    "their models are unpriced (cost null, counted) until the table or `pricing.models` names them"
)

BUILTIN: dict[str, dict[str, Price]] = {
    "anthropic": {
        model: Price(input=i, output=o, cached_input=hit, cache_write=write)
        for model, (i, write, hit, o) in _ANTHROPIC_PRICES.items()
    },
    "openai": {
        **{model: Price(input=i, output=o, cached_input=c) for model, (i, c, o) in _OPENAI_PRICES.items()},
        **{model: Price(input=i, output=o) for model, (i, o) in _OPENAI_UNCACHED.items()},
        **{model: Price(input=i, output=0.0) for model, i in _OPENAI_EMBEDDINGS.items()},
    },
    "xai": {model: Price(input=i, output=o, cached_input=c) for model, (i, c, o) in _XAI_PRICES.items()},
    "deepseek": {model: Price(input=i, output=o, cached_input=c) for model, (i, c, o) in _DEEPSEEK_PRICES.items()},
    "groq": {model: Price(input=i, output=o, cached_input=c) for model, (i, c, o) in _GROQ_PRICES.items()},
    "mistral": {model: Price(input=i, output=o) for model, (i, o) in _MISTRAL_PRICES.items()},
    "gemini": {
        "gemini-2.5-pro": Price(input=1.25, output=10.0, long_above=200_000, input_long=2.50, output_long=15.0),
        "gemini-2.5-flash": Price(input=0.30, output=2.50),
        "gemini-2.5-flash-lite": Price(input=0.10, output=0.40),
    },
}
"""Adapter type → model → price. Azure serves OpenAI's models at OpenAI's list prices (`ALIASES`)."""

SOURCES: dict[str, Source] = {
    "anthropic": ANTHROPIC,
    "openai": OPENAI,
    "gemini": GEMINI,
    "xai": XAI,
    "deepseek": DEEPSEEK,
    "groq": GROQ,
    "mistral": MISTRAL,
}

ALIASES: dict[str, str] = {"azure": "openai", "google": "gemini"}
"""Adapter types priced from another's table."""
