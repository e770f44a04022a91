"""What each hosted OpenAI-compatible service accepts in a chat request, and how a body is fitted to it.

Keys a service does not accept are dropped and listed; keys whose loss would change the answer (`MATERIAL`) are
refused with a 400 naming the parameter and the provider. A body whose keys are all accepted costs one subset test.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from portico.core.errors import UnsupportedParameter

_GUIDED = "vLLM's guided decoding, which this service does not have; use response_format"
MATERIAL: Mapping[str, str] = MappingProxyType(
    {
        "guided_json": _GUIDED,
        "guided_regex": _GUIDED,
        "guided_choice": _GUIDED,
        "guided_grammar": _GUIDED,
        "structured_outputs": "vLLM's structured outputs, which this service does not have; use response_format",
        "response_format": "this service cannot constrain the output that way",
        "n": "it returns one choice per request",
        "logprobs": "it returns no log probabilities",
        "top_logprobs": "it returns no log probabilities",
        "tools": "it has no tool calling",
        "tool_choice": "it has no tool calling",
        "functions": "it has no tool calling",
        "function_call": "it has no tool calling",
        "audio": "it produces no audio",
        "modalities": "it produces text only",
    }
)
"""Parameters whose loss would change the answer: refused unless the service accepts them or they ask for nothing."""


@dataclass(frozen=True, slots=True)
class Accepts:
    """The request parameters one service accepts (its own API reference), and the few values it lacks."""

    params: frozenset[str]
    response_formats: frozenset[str] | None = None
    """The `response_format.type` values it honours; None: any."""
    renames: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """Standard names this service spells its own way (Mistral's `random_seed`): moved, not dropped."""
    fast: frozenset[str] = field(init=False)
    """The keys that need no look at their value: a body within it is sent as it is."""

    def __post_init__(self) -> None:
        checked = {"response_format"} if self.response_formats is not None else set()
        object.__setattr__(self, "fast", self.params - checked)

    def fit(self, body: dict[str, Any], provider: str) -> tuple[str, ...]:
        """Make `body` acceptable in place; returns the dropped keys, sorted. Called only when some key is not
        in `fast`, so the common request never gets here."""
        dropped: list[str] = []
        for key in [k for k in body if k not in self.fast]:
            value = body[key]
            if key in self.params:  # accepted, but not every value of it
                self._check_format(value, provider)
                continue
            target = self.renames.get(key)
            if target is not None and target not in body:
                body[target] = body.pop(key)
                continue
            if key in MATERIAL and not _asks_nothing(key, value):
                raise UnsupportedParameter(provider, key, MATERIAL[key])
            del body[key]
            dropped.append(key)
        return tuple(sorted(dropped))

    def _check_format(self, value: Any, provider: str) -> None:
        kind = value.get("type") if isinstance(value, dict) else None
        if self.response_formats is not None and kind is not None and kind not in self.response_formats:
            allowed = ", ".join(sorted(self.response_formats))
            why = f"type '{kind}' is not one it supports ({allowed})"
            raise UnsupportedParameter(provider, "response_format", why)


def _asks_nothing(key: str, value: Any) -> bool:
    """True when dropping the parameter loses nothing: it is unset, off, or the default."""
    if value is None or value is False or value in (0, "", [], {}):
        return True
    if key == "n":
        return bool(value == 1)
    if key == "tool_choice":
        return value in ("none", "auto")
    if key == "modalities":
        return bool(value == ["text"])
    if key == "response_format":
        return isinstance(value, dict) and value.get("type") == "text"
    return False


def accepts(params: set[str], response_formats: set[str] | None = None, **renames: str) -> Accepts:
    formats = frozenset(response_formats) if response_formats is not None else None
    return Accepts(frozenset(params), formats, MappingProxyType(dict(renames)))


_JSON_MODES = {"text", "json_object", "json_schema"}

# Each list is the service's request body as its API reference documents it, read on 2026-12-02 through the
# `search` tool (docs corpus); the source is named above each one. `model` and `stream` are always the gateway's.

# OpenAI, Create chat completion (platform.openai.com/docs/api-reference/chat/create; OpenAPI 2.3.0 as generated
# in openai-client-base 0.13 on docs.rs). Unknown fields are a 400 there.
OPENAI = accepts(
    {
        "messages", "model", "stream", "stream_options", "audio", "frequency_penalty", "function_call", "functions",
        "logit_bias", "logprobs", "max_completion_tokens", "max_tokens", "metadata", "modalities", "n",
        "parallel_tool_calls", "prediction", "presence_penalty", "prompt_cache_key", "prompt_cache_retention",
        "reasoning_effort", "response_format", "safety_identifier", "seed", "service_tier", "stop", "store",
        "temperature", "tool_choice", "tools", "top_logprobs", "top_p", "user", "verbosity", "web_search_options",
    },
    _JSON_MODES,
)  # fmt: skip

# Groq, API reference "Create chat completion" (console.groq.com/docs/api-reference) and "OpenAI compatibility"
# (console.groq.com/docs/openai): logprobs, logit_bias, top_logprobs are a 400, and n must be 1.
GROQ = accepts(
    {
        "messages", "model", "stream", "stream_options", "citation_options", "compound_custom",
        "disable_tool_validation", "documents", "exclude_domains", "include_domains", "frequency_penalty",
        "function_call", "functions", "include_reasoning", "max_completion_tokens", "max_tokens",
        "parallel_tool_calls", "presence_penalty", "reasoning_effort", "reasoning_format", "response_format",
        "search_settings", "seed", "service_tier", "stop", "temperature", "tool_choice", "tools", "top_p", "user",
    },
    _JSON_MODES,
)  # fmt: skip

# Mistral, "Chat Completion" (docs.mistral.ai/api, chat_completion_v1_chat_completions_post): extra fields are a
# 422; no logprobs, no stream_options; the seed is `random_seed`.
MISTRAL = accepts(
    {
        "messages", "model", "stream", "temperature", "top_p", "max_tokens", "stop", "random_seed",
        "response_format", "tools", "tool_choice", "presence_penalty", "frequency_penalty", "n", "prediction",
        "parallel_tool_calls", "prompt_mode", "safe_prompt",
    },
    _JSON_MODES,
    seed="random_seed",
    max_completion_tokens="max_tokens",
)  # fmt: skip

# DeepSeek, "Create Chat Completion" (api-docs.deepseek.com/api/create-chat-completion): JSON output is
# `json_object` only; no n, seed, logit_bias or user.
DEEPSEEK = accepts(
    {
        "messages", "model", "stream", "stream_options", "frequency_penalty", "max_tokens", "presence_penalty",
        "response_format", "stop", "temperature", "top_p", "tools", "tool_choice", "logprobs", "top_logprobs",
    },
    {"text", "json_object"},
    max_completion_tokens="max_tokens",
)  # fmt: skip

# Together AI, "Create chat completion" (docs.together.ai/reference/chat-completions-1): vLLM-style sampling
# (top_k, min_p, repetition_penalty) is native there.
TOGETHER = accepts(
    {
        "messages", "model", "stream", "stream_options", "max_tokens", "stop", "temperature", "top_p", "top_k",
        "context_length_exceeded_behavior", "repetition_penalty", "logprobs", "echo", "n", "min_p",
        "presence_penalty", "frequency_penalty", "logit_bias", "seed", "function_call", "response_format", "tools",
        "tool_choice", "safety_model", "reasoning_effort",
    },
    _JSON_MODES,
)  # fmt: skip

# Fireworks AI, "Create Chat Completion" (fireworks.ai/docs/api-reference/post-chatcompletions): also grammar mode.
FIREWORKS = accepts(
    {
        "messages", "model", "stream", "stream_options", "tool_choice", "tools", "max_tokens",
        "max_completion_tokens", "prompt_truncate_len", "temperature", "top_p", "top_k", "frequency_penalty",
        "perf_metrics_in_response", "presence_penalty", "repetition_penalty", "reasoning_effort", "mirostat_lr",
        "mirostat_target", "n", "ignore_eos", "stop", "response_format", "context_length_exceeded_behavior",
        "logprobs", "top_logprobs", "echo", "min_p", "typical_p", "logit_bias", "user", "seed",
        "parallel_tool_calls", "prediction", "raw_output",
    },
    _JSON_MODES | {"grammar"},
)  # fmt: skip

# xAI, "Chat completions" (docs.x.ai/docs/api-reference#chat-completions).
XAI = accepts(
    {
        "messages", "model", "stream", "stream_options", "deferred", "frequency_penalty", "logit_bias", "logprobs",
        "max_completion_tokens", "max_tokens", "n", "parallel_tool_calls", "presence_penalty", "reasoning_effort",
        "response_format", "search_parameters", "seed", "stop", "temperature", "tool_choice", "tools",
        "top_logprobs", "top_p", "user", "web_search_options",
    },
    _JSON_MODES,
)  # fmt: skip

# Perplexity, Sonar "Chat Completions" (docs.perplexity.ai/api-reference/chat-completions-post): no tools, no n,
# no logprobs; structured output is json_schema or regex.
PERPLEXITY = accepts(
    {
        "messages", "model", "stream", "max_tokens", "temperature", "top_p", "top_k", "presence_penalty",
        "frequency_penalty", "response_format", "reasoning_effort", "search_mode", "search_domain_filter",
        "search_recency_filter", "search_after_date_filter", "search_before_date_filter",
        "last_updated_after_filter", "last_updated_before_filter", "return_images", "return_related_questions",
        "image_domain_filter", "image_format_filter", "web_search_options", "disable_search",
        "enable_search_classifier", "language_preference",
    },
    {"text", "json_schema", "regex"},
    max_completion_tokens="max_tokens",
)  # fmt: skip

# Cerebras, "Chat Completions" (inference-docs.cerebras.ai/api-reference/chat-completions) and its OpenAI
# compatibility page: frequency_penalty, logit_bias, presence_penalty, parallel_tool_calls, service_tier are a 400.
CEREBRAS = accepts(
    {
        "messages", "model", "stream", "stream_options", "max_completion_tokens", "max_tokens", "response_format",
        "seed", "stop", "temperature", "top_p", "tool_choice", "tools", "user", "logprobs", "top_logprobs",
        "reasoning_effort",
    },
    _JSON_MODES,
)  # fmt: skip

# OpenRouter, "API Reference" and "Parameters" (openrouter.ai/docs/api-reference/overview, /parameters): a router
# that passes vLLM-style sampling to the providers that have it; no n.
OPENROUTER = accepts(
    {
        "messages", "prompt", "model", "stream", "stream_options", "response_format", "stop", "max_tokens",
        "max_completion_tokens", "temperature", "tools", "tool_choice", "parallel_tool_calls", "seed", "top_p",
        "top_k", "frequency_penalty", "presence_penalty", "repetition_penalty", "logit_bias", "logprobs",
        "top_logprobs", "min_p", "top_a", "prediction", "transforms", "models", "route", "provider", "user",
        "reasoning", "usage", "plugins", "web_search_options", "verbosity",
    },
    _JSON_MODES,
)  # fmt: skip
