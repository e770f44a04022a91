"""Anthropic Messages (`POST /v1/messages`) as a native adapter: OpenAI chat bodies → Messages bodies.

Why native: the OpenAI-compatible endpoint Anthropic offers drops prompt caching, thinking signatures and PDFs,
which are the reasons to call Claude directly. This module builds the envelope (parameters, tools, thinking);
histories are translated in `anthropic_messages`, answers, streams and errors in `anthropic_stream`.

Decisions a client can observe (the README table lists them):
- system/developer messages become the top-level `system` (a string, or text blocks once any part carries
  `cache_control`); tools keep a `cache_control` set beside `function`; `user` becomes `metadata.user_id`;
  `parallel_tool_calls: false` becomes `disable_parallel_tool_use` on the tool choice.
- `response_format` (json_object, or json_schema with an object schema) is a forced tool `JSON_TOOL` whose input
  is returned as the message text with finish reason `stop`. Anthropic cannot force a tool while thinking and the
  forced tool would shadow the client's tools, so in those cases the format becomes a system instruction instead.
- reasoning: `thinking` passes as is (disabled → omitted); `reasoning_effort` and orq's `thinking_level` pick a
  budget. Thinking needs temperature 1 and no top_k (both dropped and listed), top_p ≥ 0.95 (else dropped) and no
  forced tool (400). `max_tokens` defaults to the `default_max_tokens` option (else 4096), raised above the budget.
  Reasoning comes back as `reasoning`/`reasoning_signature`/`redacted_reasoning` and is accepted again in history;
  reasoning without a signature is not sent back (Anthropic cannot verify it). Several redacted blocks travel
  space-separated (their data is base64, which has no spaces).
- refused (400): `n` > 1, logprobs, `logit_bias`, audio in or out, `web_search_options`, non-function tools.
- dropped and listed in `x-portico-dropped-params`: penalties, seed, metadata, store, a `service_tier` other than
  Anthropic's `auto`/`standard_only`, and every other key Anthropic does not take. `temperature` above 1 is
  clamped to Anthropic's maximum of 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from pydantic import Field

from portico.config.schema import AdapterOptions
from portico.core.errors import ProviderError, UnsupportedParameter
from portico.core.types import ChatRequest, ChatResult, JSONObject
from portico.providers.anthropic_messages import convert_messages
from portico.providers.anthropic_stream import JSON_TOOL, AnthropicStreamParser, completion_from_message, http_error
from portico.providers.base import HttpCall, HttpProvider, StreamParser, decode_json_object
from portico.providers.registry import Register, hookimpl

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
EFFORT_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384, "xhigh": 32768}
"""`reasoning_effort` / `thinking_level` → `budget_tokens` (Bedrock's Claude table; 1024 is Anthropic's minimum)."""
THINKING_HEADROOM = 4096
"""Tokens left for the answer above the thinking budget when the client set no `max_tokens`."""
MAPPED_PARAMS = frozenset(
    {
        "messages", "tools", "tool_choice", "functions", "function_call", "parallel_tool_calls", "response_format",
        "stop", "temperature", "top_p", "top_k", "max_tokens", "max_completion_tokens", "n", "logprobs",
        "top_logprobs", "thinking", "reasoning_effort", "stream_options", "modalities", "user",
    }
)  # fmt: skip
REFUSED_PARAMS = {
    "logit_bias": "Anthropic has no token biasing",
    "audio": "Anthropic answers in text only",
    "web_search_options": "Anthropic's web search is a server tool this adapter does not map",
}
SERVICE_TIERS = frozenset({"auto", "standard_only"})


class AnthropicProvider(HttpProvider):
    kind = "anthropic"
    default_base_url = "https://api.anthropic.com"

    def build_request(self, request: ChatRequest, model: str) -> HttpCall:
        default = int(self.config.options.get("default_max_tokens") or DEFAULT_MAX_TOKENS)
        payload, dropped = translate_request(request.body, model, self.name, default)
        if request.stream:
            payload["stream"] = True
        headers = {"content-type": "application/json", "anthropic-version": API_VERSION, **self.extra_headers(request)}
        key = self.api_key(request)
        if key:
            headers["x-api-key"] = key
        root = self.url_base(request)
        return HttpCall(
            url=f"{root if root.endswith('/v1') else root + '/v1'}/messages",
            headers=headers,
            body=orjson.dumps(payload),
            framing="sse",
            dropped_params=tuple(dropped),
        )

    def parse_response(self, body: bytes, model: str) -> ChatResult:
        data = decode_json_object(body, self.name)
        return ChatResult(body=completion_from_message(data, model, self.name), model=model)

    def stream_parser(self, request: ChatRequest, model: str) -> StreamParser:
        return AnthropicStreamParser(self.name, model)

    def map_error(self, status: int, body: bytes, headers: Mapping[str, str]) -> ProviderError:
        return http_error(self.name, status, body, headers)


def translate_request(
    body: Mapping[str, Any], model: str, provider: str, default_max_tokens: int = DEFAULT_MAX_TOKENS
) -> tuple[JSONObject, list[str]]:
    """OpenAI chat body (without model/stream) → a Messages body (without `stream`), plus dropped parameters."""
    dropped = _check_params(body, provider)
    thinking, chooser = _thinking(body, dropped)
    tools = _tools(body, provider)
    json_tool = _json_tool(body.get("response_format"), provider, bool(tools) or thinking is not None)
    system, turns = convert_messages(body.get("messages") or [], provider, bool(tools))
    if json_tool is None and body.get("response_format"):
        system.append({"type": "text", "text": _json_instruction(body["response_format"])})
    payload: JSONObject = {"model": model, "messages": turns}
    if system:
        cached = any("cache_control" in block for block in system)
        payload["system"] = system if cached else "\n\n".join(block["text"] for block in system)
    limit = body.get("max_completion_tokens")
    limit = body.get("max_tokens") if limit is None else limit
    payload["max_tokens"] = int(limit) if limit is not None else default_max_tokens
    if thinking is not None:
        _fit_thinking(thinking, payload, limit is not None, chooser, provider)
        payload["thinking"] = thinking
    if tools:
        payload["tools"] = tools
        choice = _tool_choice(body, provider, thinking is not None)
        if choice is not None:
            payload["tool_choice"] = choice
    elif json_tool is not None:
        payload["tools"] = [json_tool]
        payload["tool_choice"] = {"type": "tool", "name": JSON_TOOL}
    elif body.get("tool_choice") is not None or body.get("function_call") is not None:
        dropped.append("tool_choice" if body.get("tool_choice") is not None else "function_call")
    _sampling(body, payload, thinking is not None, dropped)
    if body.get("user"):
        payload["metadata"] = {"user_id": str(body["user"])}
    return payload, sorted(set(dropped))


def _check_params(body: Mapping[str, Any], provider: str) -> list[str]:
    dropped: list[str] = []
    for key, value in body.items():
        if value is None or key in MAPPED_PARAMS:
            continue
        if key in REFUSED_PARAMS:
            if value:
                raise UnsupportedParameter(provider, key, REFUSED_PARAMS[key])
            continue
        if key == "service_tier" and value in SERVICE_TIERS:
            continue
        dropped.append(key)
    if body.get("n") is not None and int(body["n"]) > 1:
        raise UnsupportedParameter(provider, "n", "Anthropic returns one message per request; send n requests")
    for key in ("top_logprobs", "logprobs"):
        if body.get(key):
            raise UnsupportedParameter(provider, key, "Anthropic returns no log probabilities")
    if "audio" in (body.get("modalities") or ()):
        raise UnsupportedParameter(provider, "modalities", "Anthropic answers in text only")
    return dropped


def _thinking(body: Mapping[str, Any], dropped: list[str]) -> tuple[JSONObject | None, str | None]:
    """(the `thinking` to send, the level parameter the gateway chose its budget from, if it did).

    An explicit `thinking` wins over `reasoning_effort`, which is then dropped and listed.
    """
    spec, effort = body.get("thinking"), body.get("reasoning_effort")
    if isinstance(spec, dict):
        if effort is not None:
            dropped.append("reasoning_effort")
        kind = spec.get("type")
        if kind == "adaptive":
            return {"type": "adaptive"}, None
        if kind != "enabled":
            return None, None
        budget = spec.get("budget_tokens") or EFFORT_BUDGETS.get(str(spec.get("thinking_level")), 8192)
        return {"type": "enabled", "budget_tokens": int(budget)}, None if spec.get("budget_tokens") else "thinking"
    if effort in EFFORT_BUDGETS:
        return {"type": "enabled", "budget_tokens": EFFORT_BUDGETS[effort]}, "reasoning_effort"
    return None, None


def _fit_thinking(
    thinking: JSONObject, payload: JSONObject, client_limit: bool, chooser: str | None, provider: str
) -> None:
    """Anthropic requires max_tokens > budget_tokens: raise our default, shrink a budget we chose, refuse the rest."""
    budget = thinking.get("budget_tokens")
    if budget is None or payload["max_tokens"] > budget:
        return
    if not client_limit:
        payload["max_tokens"] = budget + THINKING_HEADROOM
    elif chooser and payload["max_tokens"] > EFFORT_BUDGETS["minimal"]:
        thinking["budget_tokens"] = payload["max_tokens"] - 1
    else:
        param = chooser or "thinking.budget_tokens"
        raise UnsupportedParameter(provider, param, f"Anthropic needs max_tokens ({payload['max_tokens']}) above it")


def _sampling(body: Mapping[str, Any], payload: JSONObject, thinking: bool, dropped: list[str]) -> None:
    temperature, top_p, top_k = body.get("temperature"), body.get("top_p"), body.get("top_k")
    if temperature is not None:
        if thinking and float(temperature) != 1:
            dropped.append("temperature")
        else:
            payload["temperature"] = min(float(temperature), 1.0)
    if top_p is not None:
        if thinking and float(top_p) < 0.95:
            dropped.append("top_p")
        else:
            payload["top_p"] = top_p
    if top_k is not None:
        if thinking:
            dropped.append("top_k")
        else:
            payload["top_k"] = int(top_k)
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else list(stop or ())
    if any(s.strip() for s in stops):
        payload["stop_sequences"] = [s for s in stops if s.strip()]
    if body.get("service_tier") in SERVICE_TIERS:
        payload["service_tier"] = body["service_tier"]


def _tools(body: Mapping[str, Any], provider: str) -> list[JSONObject]:
    """OpenAI function tools (and legacy `functions`) → Anthropic tools; `cache_control` beside `function` is kept."""
    entries = [(t, t.get("function")) for t in body.get("tools") or ()]
    entries.extend((fn, fn) for fn in body.get("functions") or ())
    tools: list[JSONObject] = []
    for i, (tool, fn) in enumerate(entries):
        if tool.get("type", "function") != "function" or not isinstance(fn, dict) or fn.get("name") == JSON_TOOL:
            raise UnsupportedParameter(provider, f"tools[{i}]", f"Anthropic takes function tools not named {JSON_TOOL}")
        spec: JSONObject = {"name": fn["name"]}
        if fn.get("description"):
            spec["description"] = fn["description"]
        spec["input_schema"] = fn.get("parameters") or {"type": "object", "properties": {}}
        control = tool.get("cache_control") or fn.get("cache_control")
        if control:
            spec["cache_control"] = control
        tools.append(spec)
    return tools


def _tool_choice(body: Mapping[str, Any], provider: str, thinking: bool) -> JSONObject | None:
    choice = body.get("tool_choice", body.get("function_call"))
    parallel = body.get("parallel_tool_calls")
    out: JSONObject | None
    if choice == "none":
        return {"type": "none"}
    if choice == "required":
        out = {"type": "any"}
    elif isinstance(choice, dict):
        out = {"type": "tool", "name": (choice.get("function") or choice).get("name")}
    else:
        out = {"type": "auto"} if choice == "auto" or parallel is False else None
    if thinking and out is not None and out["type"] in ("any", "tool"):
        raise UnsupportedParameter(provider, "tool_choice", "Anthropic cannot force a tool while thinking")
    if out is not None and parallel is False:
        out["disable_parallel_tool_use"] = True
    return out


def _json_tool(fmt: Any, provider: str, conflicts: bool) -> JSONObject | None:
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind in (None, "text"):
        return None
    if kind not in ("json_object", "json_schema"):
        raise UnsupportedParameter(provider, "response_format", f"Anthropic has no {kind} output")
    spec = fmt.get("json_schema") or {}
    schema = spec.get("schema") if kind == "json_schema" else None
    schema = schema if isinstance(schema, dict) else {"type": "object"}
    if conflicts or schema.get("type") != "object":
        return None
    description = spec.get("description") or f"Give the answer as JSON ({spec.get('name') or 'a JSON object'})."
    return {"name": JSON_TOOL, "description": description, "input_schema": schema}


def _json_instruction(fmt: Mapping[str, Any]) -> str:
    schema = (fmt.get("json_schema") or {}).get("schema")
    shape = f" matching this JSON schema: {orjson.dumps(schema).decode()}" if schema else ""
    return f"Answer with JSON only{shape}. Output nothing but the JSON value."


class AnthropicOptions(AdapterOptions):
    default_max_tokens: int = Field(DEFAULT_MAX_TOKENS, ge=1, description="max_tokens when a request sets none.")


@hookimpl
def register_providers(register: Register) -> None:
    register("anthropic", AnthropicProvider, env_key="ANTHROPIC_API_KEY", options=AnthropicOptions)
