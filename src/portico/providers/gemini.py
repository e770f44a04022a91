"""Google Gemini (Generative Language API) as a native adapter: OpenAI chat bodies → `generateContent`, and back.

Native rather than through Gemini's OpenAI-compatible endpoint so that every Gemini feature (thought parts and
their signatures, thinking budgets and levels, safety settings, cached content, logprobs) is mapped explicitly and
tested against the real wire format. This module builds the request envelope: every OpenAI field is translated,
refused with a 400 naming it (it would change the answer and Gemini cannot honour it), or dropped and reported in
`x-portico-dropped-params` — never sent unknown, because the API answers 400 to any field it does not know. What
goes inside turns (content parts, model turns with their signatures) and everything Gemini sends back are
translated in `gemini_stream`.

Gemini has no tool-call ids: ids are synthesised on the way out (`gemini_stream.call_id`) and mapped back here
to function names, in call order, when tool results return in the history.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from typing import Any

import orjson

from portico.config.schema import AdapterOptions, ProviderConfig
from portico.core.embeddings import EmbeddingRequest, EmbeddingResult
from portico.core.errors import ProviderError, RequestError, UnsupportedParameter
from portico.core.types import ChatRequest, ChatResult, JSONObject
from portico.providers import gemini_embed
from portico.providers.base import CallOptions, HttpCall, HttpProvider, StreamParser, decode_json_object
from portico.providers.base import credentials_view as view_of
from portico.providers.gemini_stream import (
    GeminiStreamParser,
    completion_from_response,
    error_from_body,
    model_parts,
    texts,
    tool_response,
    user_parts,
)
from portico.providers.registry import Register, hookimpl
from portico.providers.transport import Transport

MAPPED_PARAMS = frozenset({
    "messages", "tools", "tool_choice", "functions", "function_call", "response_format", "stop", "temperature",
    "top_p", "top_k", "presence_penalty", "frequency_penalty", "seed", "max_tokens", "max_completion_tokens", "n",
    "logprobs", "top_logprobs", "thinking", "thinking_level", "reasoning_effort", "stream_options", "modalities",
    "safety_settings", "safetySettings", "cached_content", "cachedContent",
})  # fmt: skip
"""Translated (or, for `stream_options`, consumed: the adapter always reports stream usage)."""

REFUSED_PARAMS = {
    "logit_bias": "Gemini has no token biasing",
    "audio": "Gemini's generateContent does not return audio in chat replies",
    "web_search_options": "use a Gemini-native search tool instead",
}
"""Parameters that change the answer and that Gemini cannot honour: a clear 400 beats a silently different reply."""

_SCHEMA_COPY = (
    "title", "description", "maxItems", "minItems", "minProperties", "maxProperties", "minLength", "maxLength",
    "pattern", "example", "default", "minimum", "maximum",
)  # fmt: skip
_FORMATS = {"STRING": {"enum", "date-time"}, "INTEGER": {"int32", "int64"}, "NUMBER": {"float", "double"}}
_EFFORT_LEVELS = {"none": "MINIMAL", "minimal": "MINIMAL", "low": "LOW", "medium": "MEDIUM", "high": "HIGH"}
_EFFORT_BUDGETS = {"none": 0, "minimal": 512, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 24576}
"""Gemini 2.x takes budgets (Google's own OpenAI layer maps low/medium/high to 1K/8K/24K); Gemini 3+ takes levels."""
_RENAMED: dict[str, tuple[str, Any]] = {
    "temperature": ("temperature", float), "top_p": ("topP", float), "top_k": ("topK", int), "seed": ("seed", int),
    "presence_penalty": ("presencePenalty", float), "frequency_penalty": ("frequencyPenalty", float),
}  # fmt: skip
_VERSIONED = re.compile(r"/v1(alpha|beta)?$")


class GeminiProvider(HttpProvider):
    kind = "gemini"
    default_base_url = "https://generativelanguage.googleapis.com"

    def __init__(self, name: str, config: ProviderConfig) -> None:
        super().__init__(name, config)
        self.api_version = str(config.options.get("api_version") or "v1beta")

    max_embed_batch = gemini_embed.MAX_BATCH

    def build_request(self, request: ChatRequest, model: str) -> HttpCall:
        payload, dropped = translate_request(request.body, model, self.name)
        method = "streamGenerateContent?alt=sse" if request.stream else "generateContent"
        return HttpCall(
            url=self._url(request, model, method),
            headers=self._headers(request),
            body=orjson.dumps(payload),
            framing="sse",
            dropped_params=tuple(dropped),
        )

    def _headers(self, request: ChatRequest) -> dict[str, str]:
        headers = {"Content-Type": "application/json", **self.extra_headers(request)}
        key = self.api_key(request)
        if key:
            headers["x-goog-api-key"] = key
        return headers

    def _url(self, request: ChatRequest, model: str, method: str) -> str:
        root = self.url_base(request)
        if not _VERSIONED.search(root):
            root = f"{root}/{self.api_version}"
        return f"{root}/{model_path(model)}:{method}"

    async def embed(
        self, request: EmbeddingRequest, model: str, transport: Transport, options: CallOptions
    ) -> EmbeddingResult:
        view = view_of(request.credentials)
        body = orjson.dumps(gemini_embed.batch_payload(request, model_path(model)))
        call = HttpCall(self._url(view, model, "batchEmbedContents"), self._headers(view), body)
        data, _ = await self.send_json(call, transport, options, request.credentials)
        count = len(request.texts)
        return self.parse_guarded(lambda d: gemini_embed.parse_batch(d, model, count), data, "embeddings answer")

    def parse_response(self, body: bytes, model: str) -> ChatResult:
        data = decode_json_object(body, self.name)
        completion = completion_from_response(data, model, self.name)
        return ChatResult(body=completion, model=str(completion["model"]))

    def stream_parser(self, request: ChatRequest, model: str) -> StreamParser:
        return GeminiStreamParser(self.name, model)

    def map_error(self, status: int, body: bytes, headers: Mapping[str, str]) -> ProviderError:
        return error_from_body(self.name, status, body, headers)


def model_path(model: str) -> str:
    """`gemini-2.5-flash` and `models/gemini-2.5-flash` → `models/...`; tuned models keep their own collection."""
    name = model.removeprefix("models/")
    return name if name.startswith("tunedModels/") else f"models/{name}"


def translate_request(body: Mapping[str, Any], model: str, provider: str) -> tuple[JSONObject, list[str]]:
    """OpenAI chat body (without model/stream) → a `GenerateContentRequest` body, plus the dropped parameters."""
    dropped: list[str] = []
    for key, value in body.items():
        if value is None or key in MAPPED_PARAMS:
            continue
        if key in REFUSED_PARAMS:
            raise UnsupportedParameter(provider, key, REFUSED_PARAMS[key])
        dropped.append(key)
    system, contents = translate_messages(body.get("messages") or [], provider)
    payload: JSONObject = {
        "contents": contents,
        "systemInstruction": {"parts": system} if system else None,
        **_tools(body, provider),
        "generationConfig": _generation_config(body, model, provider, dropped),
        "safetySettings": body.get("safety_settings", body.get("safetySettings")),
        "cachedContent": body.get("cached_content", body.get("cachedContent")),
    }
    return {k: v for k, v in payload.items() if v or k == "contents"}, sorted(dropped)


def _generation_config(body: Mapping[str, Any], model: str, provider: str, dropped: list[str]) -> JSONObject:
    config: JSONObject = {}
    for source, (target, cast) in _RENAMED.items():
        if body.get(source) is not None:
            config[target] = cast(body[source])
    limit = body.get("max_completion_tokens")
    limit = body.get("max_tokens") if limit is None else limit
    if limit is not None:
        config["maxOutputTokens"] = int(limit)
    stop = body.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("n") is not None and int(body["n"]) != 1:
        config["candidateCount"] = int(body["n"])
    if body.get("logprobs"):
        config["responseLogprobs"] = True
        if body.get("top_logprobs"):
            config["logprobs"] = int(body["top_logprobs"])
    if any(kind != "text" for kind in body.get("modalities") or ()):
        raise UnsupportedParameter(provider, "modalities", "Gemini chat replies are text only here")
    fmt = body.get("response_format")
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
        schema = (fmt.get("json_schema") or {}).get("schema") if isinstance(fmt, dict) else None
        if isinstance(schema, dict):
            config["responseSchema"] = gemini_schema(schema, ordered=True)
    elif kind not in (None, "text"):
        raise UnsupportedParameter(provider, "response_format", f"type '{kind}' has no Gemini equivalent")
    thinking = _thinking_config(body, model, dropped)
    if thinking:
        config["thinkingConfig"] = thinking
    return config


def _thinking_config(body: Mapping[str, Any], model: str, dropped: list[str]) -> JSONObject | None:
    """`thinking` wins over `thinking_level`, which wins over `reasoning_effort`; the losers are reported dropped."""
    given = [key for key in ("thinking", "thinking_level", "reasoning_effort") if body.get(key) is not None]
    if not given:
        return None
    dropped.extend(given[1:])
    value = body[given[0]]
    if given[0] == "thinking_level":
        return {"includeThoughts": True, "thinkingLevel": str(value).upper()}
    if given[0] == "reasoning_effort":
        effort = str(value)
        if re.match(r"gemini-[12]\.", model.removeprefix("models/")):
            budget = _EFFORT_BUDGETS.get(effort, 8192)
            return {"thinkingBudget": 0} if budget == 0 else {"includeThoughts": True, "thinkingBudget": budget}
        level = _EFFORT_LEVELS.get(effort, "HIGH")
        return {"thinkingLevel": level} if effort == "none" else {"includeThoughts": True, "thinkingLevel": level}
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "disabled":
        return {"thinkingBudget": 0}
    config: JSONObject = {"includeThoughts": True}
    if kind == "enabled" and isinstance(value, dict):
        if value.get("thinking_level"):
            config["thinkingLevel"] = str(value["thinking_level"]).upper()
        elif value.get("budget_tokens") is not None:
            config["thinkingBudget"] = int(value["budget_tokens"])
    return config


def _tools(body: Mapping[str, Any], provider: str) -> JSONObject:
    declarations: list[JSONObject] = []
    for tool in body.get("tools") or ():
        if tool.get("type", "function") != "function" or not isinstance(tool.get("function"), dict):
            raise UnsupportedParameter(provider, "tools", f"tool type '{tool.get('type')}' has no Gemini equivalent")
        declarations.append(_declaration(tool["function"]))
    declarations.extend(_declaration(fn) for fn in body.get("functions") or ())
    if not declarations:
        return {}
    choice = body.get("tool_choice", body.get("function_call"))
    calling: JSONObject | None = None
    if choice in ("none", "auto", "required"):
        calling = {"mode": {"none": "NONE", "auto": "AUTO", "required": "ANY"}[choice]}
    elif isinstance(choice, dict):
        name = (choice.get("function") or choice).get("name")
        calling = {"mode": "ANY", "allowedFunctionNames": [name]}
    return {
        "tools": [{"functionDeclarations": declarations}],
        "toolConfig": calling and {"functionCallingConfig": calling},
    }


def _declaration(fn: Mapping[str, Any]) -> JSONObject:
    out: JSONObject = {"name": fn["name"]}
    if fn.get("description"):
        out["description"] = fn["description"]
    params = fn.get("parameters")
    if isinstance(params, dict) and (params.get("properties") or params.get("type") not in (None, "object")):
        out["parameters"] = gemini_schema(params)  # an OBJECT without properties is a 400 at Gemini: omit it
    return out


def gemini_schema(schema: Mapping[str, Any], *, ordered: bool = False) -> JSONObject:
    """JSON Schema → Gemini's OpenAPI-subset `Schema`: refs inlined, nullable unions folded, unknown keys dropped.

    Gemini answers 400 to keys outside its subset (`additionalProperties`, `$schema`, `const`, ...), to formats
    other than enum/date-time/int32/int64/float/double, and to enums on non-string types (those move to the
    description so the constraint still reaches the model). `ordered` adds `propertyOrdering` (response schemas).
    """
    defs = {**(schema.get("definitions") or {}), **(schema.get("$defs") or {})}
    return _schema(schema, defs, ordered, 0)


def _schema(node: Any, defs: Mapping[str, Any], ordered: bool, depth: int) -> JSONObject:
    if not isinstance(node, dict) or depth > 24:
        return {}
    if isinstance(node.get("$ref"), str):
        target = defs.get(node["$ref"].rsplit("/", 1)[-1]) or {}
        return _schema({**target, **{k: v for k, v in node.items() if k != "$ref"}}, defs, ordered, depth + 1)
    if isinstance(node.get("allOf"), list):
        merged: dict[str, Any] = {k: v for k, v in node.items() if k != "allOf"}
        for member in node["allOf"]:
            part = defs.get(member["$ref"].rsplit("/", 1)[-1], {}) if "$ref" in member else member
            merged["properties"] = {**merged.get("properties", {}), **part.get("properties", {})}
            merged["required"] = [*merged.get("required", []), *part.get("required", [])]
            merged.update({k: v for k, v in part.items() if k not in ("properties", "required")})
        return _schema(merged, defs, ordered, depth + 1)
    out: JSONObject = {}
    kind = node.get("type")
    nullable = bool(node.get("nullable"))
    if isinstance(kind, list):
        nullable = nullable or "null" in kind
        kinds = [k for k in kind if k != "null"]
        kind = kinds[0] if len(kinds) == 1 else None
        if len(kinds) > 1:
            out["anyOf"] = [{"type": str(k).upper()} for k in kinds]
    variants = node.get("anyOf", node.get("oneOf"))
    if isinstance(variants, list):
        real = [v for v in variants if not (isinstance(v, dict) and v.get("type") == "null")]
        nullable = nullable or len(real) < len(variants)
        if len(real) == 1:
            out.update(_schema(real[0], defs, ordered, depth + 1))
        else:
            out["anyOf"] = [_schema(v, defs, ordered, depth + 1) for v in real]
    if isinstance(kind, str) and kind != "null":
        out["type"] = kind.upper()
    for key in _SCHEMA_COPY:
        if key in node:
            out[key] = node[key]
    enum = [node["const"]] if "const" in node else node.get("enum")
    if isinstance(enum, list):
        if out.get("type", "STRING") == "STRING" and all(isinstance(v, str) for v in enum):
            out["enum"] = enum
            out.setdefault("type", "STRING")
        else:
            allowed = ", ".join(orjson.dumps(v).decode() for v in enum)
            out["description"] = f"{out.get('description', '')} (one of: {allowed})".strip()
    if node.get("format") in _FORMATS.get(out.get("type", ""), ()):
        out["format"] = node["format"]
    if isinstance(node.get("properties"), dict):
        out["properties"] = {k: _schema(v, defs, ordered, depth + 1) for k, v in node["properties"].items()}
        if ordered and out["properties"]:
            out["propertyOrdering"] = list(out["properties"])
        required = [r for r in node.get("required") or () if r in out["properties"]]
        if required:
            out["required"] = list(dict.fromkeys(required))
    items = node.get("items")
    if isinstance(items, (dict, list)):
        out["items"] = _schema(items[0] if isinstance(items, list) and items else items, defs, ordered, depth + 1)
    if nullable:
        out["nullable"] = True
    return out


def translate_messages(messages: list[Any], provider: str) -> tuple[list[JSONObject], list[JSONObject]]:
    """OpenAI messages → (systemInstruction parts, contents), normalised the way Gemini insists on.

    System/developer messages (anywhere) become `systemInstruction`; consecutive turns of one role merge (tool
    results join the user turn that follows them); empty text is dropped; a model turn's function calls must all
    be answered by the next turn's function responses (reordered to call order here, duplicates dropped). An
    unanswered or stray tool result is refused with a 400 naming the message, as OpenAI itself does.
    """
    system: list[JSONObject] = []
    entries: list[tuple[str, JSONObject, str | None, int]] = []  # (role, part, call id, message index)
    names: dict[str, str] = {}
    legacy: dict[str, str] = {}
    for i, message in enumerate(messages):
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend({"text": t} for t in texts(message.get("content")) if t)
        elif role == "user":
            entries.extend(("user", part, None, i) for part in user_parts(message.get("content"), i, provider))
        elif role == "assistant":
            for part, cid in model_parts(message, i):
                entries.append(("model", part, cid, i))
                if cid is not None:
                    names[cid] = part["functionCall"]["name"]
            if message.get("function_call"):
                legacy[message["function_call"]["name"]] = f"legacy_{i}"
        elif role in ("tool", "function"):
            cid = message.get("tool_call_id") if role == "tool" else legacy.get(str(message.get("name")))
            if not cid or cid not in names:
                raise _history_error(i, "", "is a tool result that answers no earlier assistant tool call")
            response = {"name": names[cid], "response": tool_response(message.get("content"))}
            entries.append(("user", {"functionResponse": response}, cid, i))
    return system, _turns(entries)


def _turns(entries: list[tuple[str, JSONObject, str | None, int]]) -> list[JSONObject]:
    groups = [list(group) for _, group in itertools.groupby(entries, key=lambda entry: entry[0])]
    contents: list[JSONObject] = []
    calls: dict[str, None] = {}  # the previous model turn's call ids, in call order
    asked_at = 0
    for group in groups:
        if group[0][0] == "model":
            calls = dict.fromkeys(cid for _, _, cid, _ in group if cid is not None)
            asked_at = next((i for _, _, cid, i in group if cid is not None), 0)
            contents.append({"role": "model", "parts": [part for _, part, _, _ in group]})
            continue
        answers: dict[str, JSONObject] = {}
        for _, part, cid, index in group:
            if cid is not None and cid not in calls:
                raise _history_error(index, ".tool_call_id", f"answers '{cid}', not a call of the turn before it")
            if cid is not None:
                answers.setdefault(cid, part)
        missing = [cid for cid in calls if cid not in answers]
        if missing:
            raise _history_error(asked_at, ".tool_calls", f"has tool call '{missing[0]}' without a tool result")
        ordered = [answers[cid] for cid in calls]
        calls = {}
        contents.append({"role": "user", "parts": ordered + [part for _, part, cid, _ in group if cid is None]})
    if calls:
        raise _history_error(asked_at, ".tool_calls", f"has tool call '{next(iter(calls))}' without a tool result")
    return contents


def _history_error(index: int, suffix: str, what: str) -> RequestError:
    message = f"messages[{index}] {what}; every tool call must be answered by a tool message, in the next turn."
    return RequestError(message, code="invalid_tool_history", param=f"messages[{index}]{suffix}")


@hookimpl
def register_providers(register: Register) -> None:
    register("gemini", GeminiProvider, env_key="GEMINI_API_KEY", options=GeminiOptions)
    register("google", GeminiProvider, env_key="GEMINI_API_KEY", options=GeminiOptions)


class GeminiOptions(AdapterOptions):
    api_version: str = "v1beta"
