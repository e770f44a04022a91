"""The OpenAI-compatible family as configuration: one `Flavor` row per service, all served by one adapter."""

from __future__ import annotations

from functools import partial

from portico.providers import openai_params as params
from portico.providers.openai_compatible import Flavor, OpenAICompatibleProvider
from portico.providers.registry import Register, hookimpl

FLAVORS: dict[str, Flavor] = {
    "openai": Flavor("https://api.openai.com/v1", "OPENAI_API_KEY", accepts=params.OPENAI),
    "groq": Flavor("https://api.groq.com/openai/v1", "GROQ_API_KEY", accepts=params.GROQ, embeddings=False),
    "mistral": Flavor("https://api.mistral.ai/v1", "MISTRAL_API_KEY", accepts=params.MISTRAL, stream_usage=False),
    "deepseek": Flavor("https://api.deepseek.com/v1", "DEEPSEEK_API_KEY", accepts=params.DEEPSEEK, embeddings=False),
    "together": Flavor("https://api.together.xyz/v1", "TOGETHER_API_KEY", accepts=params.TOGETHER, rerank=True),
    "fireworks": Flavor("https://api.fireworks.ai/inference/v1", "FIREWORKS_API_KEY", accepts=params.FIREWORKS),
    "xai": Flavor("https://api.x.ai/v1", "XAI_API_KEY", accepts=params.XAI),
    "perplexity": Flavor(
        "https://api.perplexity.ai",
        "PERPLEXITY_API_KEY",
        accepts=params.PERPLEXITY,
        stream_usage=False,
        embeddings=False,
    ),
    "cerebras": Flavor("https://api.cerebras.ai/v1", "CEREBRAS_API_KEY", accepts=params.CEREBRAS, embeddings=False),
    "openrouter": Flavor("https://openrouter.ai/api/v1", "OPENROUTER_API_KEY", accepts=params.OPENROUTER),
    "vllm": Flavor("http://localhost:8000/v1", "VLLM_API_KEY", key_required=False, rerank=True),
    "ollama": Flavor("http://localhost:11434/v1", None, key_required=False),
    "lmstudio": Flavor("http://localhost:1234/v1", None, key_required=False),
    "openailike": Flavor(None, None, key_required=False, rerank=True),
}
"""Hosted services list what they accept (`openai_params.py`); self-hosted servers take every key as sent.
`embeddings=False`: the service has no `/embeddings`; `rerank=True`: it serves `/rerank` (vLLM, TEI, Together)."""


@hookimpl
def register_providers(register: Register) -> None:
    for kind, flavor in FLAVORS.items():
        register(kind, partial(OpenAICompatibleProvider, flavor=flavor), env_key=flavor.env_key)
