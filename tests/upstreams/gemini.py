"""A mock Gemini Generative Language API (`v1beta/models/{model}:generateContent` and `:streamGenerateContent?alt=sse`).

Strict the way the real API is, so an adapter cannot pass by sending approximations: unknown fields at any depth,
empty text parts, empty turns, unknown roles, a model turn whose function calls are not all answered in the next
turn, both `thinkingBudget` and `thinkingLevel`, or a missing API key are refused with Google's error shape.
Field names are accepted in camelCase and snake_case, as Google's JSON parser does.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from aiohttp import web

from tests.upstreams.server import UpstreamState, read_json

SCHEMA = {
    "type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems", "properties", "required",
    "minProperties", "maxProperties", "minLength", "maxLength", "pattern", "example", "anyOf", "propertyOrdering",
    "default", "items", "minimum", "maximum",
}  # fmt: skip
FIELDS: dict[str, set[str]] = {
    "request": {
        "contents", "tools", "toolConfig", "safetySettings", "systemInstruction", "generationConfig", "cachedContent",
        "model",
    },
    "content": {"role", "parts"},
    "part": {
        "text", "inlineData", "fileData", "functionCall", "functionResponse", "thought", "thoughtSignature",
        "executableCode", "codeExecutionResult", "videoMetadata", "mediaResolution", "partMetadata",
    },
    "inlineData": {"mimeType", "data"},
    "fileData": {"mimeType", "fileUri"},
    "functionCall": {"id", "name", "args"},
    "functionResponse": {"id", "name", "response", "willContinue", "scheduling", "parts"},
    "generationConfig": {
        "stopSequences", "responseMimeType", "responseSchema", "responseJsonSchema", "responseModalities",
        "candidateCount", "maxOutputTokens", "temperature", "topP", "topK", "seed", "presencePenalty",
        "frequencyPenalty", "responseLogprobs", "logprobs", "enableEnhancedCivicAnswers", "speechConfig",
        "thinkingConfig", "imageConfig", "mediaResolution",
    },
    "thinkingConfig": {"includeThoughts", "thinkingBudget", "thinkingLevel"},
    "toolConfig": {"functionCallingConfig", "retrievalConfig"},
    "functionCallingConfig": {"mode", "allowedFunctionNames"},
    "tool": {"functionDeclarations", "googleSearch", "googleSearchRetrieval", "codeExecution", "urlContext"},
    "functionDeclaration": {
        "name", "description", "parameters", "parametersJsonSchema", "response", "responseJsonSchema", "behavior",
    },
    "safetySetting": {"category", "threshold"},
    "schema": SCHEMA,
}  # fmt: skip
CHILDREN = {
    ("request", "contents"): "content",
    ("request", "systemInstruction"): "content",
    ("request", "tools"): "tool",
    ("request", "toolConfig"): "toolConfig",
    ("request", "generationConfig"): "generationConfig",
    ("request", "safetySettings"): "safetySetting",
    ("content", "parts"): "part",
    ("part", "inlineData"): "inlineData",
    ("part", "fileData"): "fileData",
    ("part", "functionCall"): "functionCall",
    ("part", "functionResponse"): "functionResponse",
    ("generationConfig", "thinkingConfig"): "thinkingConfig",
    ("generationConfig", "responseSchema"): "schema",
    ("toolConfig", "functionCallingConfig"): "functionCallingConfig",
    ("tool", "functionDeclarations"): "functionDeclaration",
    ("functionDeclaration", "parameters"): "schema",
    ("schema", "items"): "schema",
    ("schema", "anyOf"): "schema",
}
TYPES = {"STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL", "TYPE_UNSPECIFIED"}
STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


class Invalid(Exception):
    pass


def camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def normalise(value: Any) -> Any:
    """snake_case → camelCase keys everywhere except inside free-form JSON (function args and responses)."""
    if isinstance(value, list):
        return [normalise(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, item in value.items():
        name = camel(key)
        out[name] = item if name in ("args", "response") else normalise(item)
    return out


def check(obj: Any, kind: str, path: str) -> None:
    if not isinstance(obj, dict):
        raise Invalid(f"Invalid value at '{path}': expected an object")
    for name, value in obj.items():
        if name not in FIELDS[kind] and not (kind == "schema" and path.endswith(".properties")):
            raise Invalid(f"Invalid JSON payload received. Unknown name \"{name}\" at '{path}': Cannot find field.")
        child = CHILDREN.get((kind, name))
        if kind == "schema" and name == "properties":
            for prop, spec in (value or {}).items():
                check(spec, "schema", f"{path}.properties[{prop}]")
        elif kind == "schema" and name == "type" and str(value).upper() not in TYPES:
            raise Invalid(f"Invalid value at '{path}.type' ({value!r})")
        elif child is not None:
            for i, item in enumerate(value if isinstance(value, list) else [value]):
                check(item, child, f"{path}.{name}[{i}]" if isinstance(value, list) else f"{path}.{name}")


def validate(body: Any) -> None:
    if not isinstance(body, dict):
        raise Invalid("Invalid JSON payload received.")
    check(body, "request", "request")
    contents = body.get("contents") or []
    if not contents:
        raise Invalid("* GenerateContentRequest.contents: contents is not specified")
    for content in [*contents, *([body["systemInstruction"]] if "systemInstruction" in body else [])]:
        if content.get("role", "user") not in ("user", "model"):
            raise Invalid(f"Please use a valid role: user, model. (got {content.get('role')!r})")
        if not content.get("parts"):
            raise Invalid("* GenerateContentRequest.contents.parts: contents.parts must not be empty.")
        for part in content["parts"]:
            if "text" in part and not part["text"]:
                raise Invalid(
                    "Unable to submit request because it has an empty text parameter. Add a value to the parameter "
                    "and try again."
                )
    for i, content in enumerate(contents):
        calls = sum("functionCall" in p for p in content["parts"])
        if content.get("role") != "model" or not calls:
            continue
        following = contents[i + 1] if i + 1 < len(contents) else {"parts": []}
        answers = sum("functionResponse" in p for p in following["parts"])
        if following.get("role", "user") != "user" or answers != calls:
            raise Invalid(
                "Please ensure that the number of function response parts is equal to the number of function call "
                "parts of the function call turn."
            )
    thinking = (body.get("generationConfig") or {}).get("thinkingConfig") or {}
    if "thinkingBudget" in thinking and "thinkingLevel" in thinking:
        raise Invalid("You can only set only one of thinking budget and thinking level.")


def error(status: int, message: str, retry_after: float | None = None) -> web.Response:
    payload: dict[str, Any] = {"code": status, "message": message, "status": STATUS.get(status, "UNKNOWN")}
    headers = {}
    if retry_after is not None:
        payload["details"] = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry_after:g}s"}]
        headers["retry-after"] = f"{retry_after:g}"
    return web.json_response({"error": payload}, status=status, headers=headers)


def _text_of(content: dict[str, Any]) -> str:
    return " ".join(p["text"] for p in content.get("parts") or [] if "text" in p and not p.get("thought"))


def reply_parts(body: dict[str, Any], model: str) -> tuple[list[dict[str, Any]], bool]:
    """(parts, calls a tool) following the contract script."""
    contents = body["contents"]
    results = [p["functionResponse"] for c in contents for p in c["parts"] if "functionResponse" in p]
    declarations = [d for t in body.get("tools") or [] for d in t.get("functionDeclarations") or []]
    calling = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
    thinking = ((body.get("generationConfig") or {}).get("thinkingConfig") or {}).get("includeThoughts")
    parts: list[dict[str, Any]] = []
    if thinking:
        parts.append({"text": "Let me think.", "thought": True, "thoughtSignature": "sig-1"})
    if results:
        response = results[-1]["response"]
        result = response.get("output", json.dumps(response)) if isinstance(response, dict) else response
        parts.append({"text": f"Tool result: {result}"})
    elif declarations and calling.get("mode", "AUTO") != "NONE":
        name = (calling.get("allowedFunctionNames") or [declarations[0]["name"]])[0]
        parts.append({"functionCall": {"name": name, "args": {"city": "Paris"}}})
        return parts, True
    else:
        user = [c for c in contents if c.get("role", "user") == "user" and _text_of(c)]
        parts.append({"text": f"Echo from {model}: {_text_of(user[-1]) if user else ''}"})
    return parts, False


def usage(body: dict[str, Any], parts: list[dict[str, Any]], n: int) -> dict[str, Any]:
    prompt_texts = [_text_of(c) for c in [*body["contents"], body.get("systemInstruction") or {}]]
    prompt = max(1, sum(len(t.split()) for t in prompt_texts))
    output = n * sum(len(p["text"].split()) if "text" in p and not p.get("thought") else 5 for p in parts)
    thoughts = 3 * n if any(p.get("thought") for p in parts) else 0
    meta = {"promptTokenCount": prompt, "candidatesTokenCount": output, "totalTokenCount": prompt + output + thoughts}
    if thoughts:
        meta["thoughtsTokenCount"] = thoughts
    meta["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt}]
    return meta


def install(app: web.Application, state: UpstreamState) -> None:
    async def generate(request: web.Request) -> web.StreamResponse:
        raw = await read_json(request)
        state.record(request, raw)
        model, method = request.match_info["model"], request.match_info["method"]
        if method not in ("generateContent", "streamGenerateContent"):
            return error(404, f"Method {method} not found.")
        if not (request.headers.get("x-goog-api-key") or request.query.get("key")):
            return error(403, "Method doesn't allow unregistered callers (callers without established identity).")
        failure = state.take_failure(model)
        if failure is not None:
            return error(failure.status, failure.message, failure.retry_after)
        if (simulated := await state.simulate(model, error, request)) is not None:
            return simulated
        mode, arg = state.mode(model)
        body = normalise(raw)
        try:
            validate(body)
        except Invalid as exc:
            return error(400, str(exc))
        if method == "streamGenerateContent":
            if request.query.get("alt") != "sse":
                return error(400, "this mock streams with alt=sse only")
            return await _stream(request, body, model, mode, arg)
        return web.json_response(_response(body, model))

    app.router.add_post(r"/v1beta/models/{model:[^/:]+}:{method}", generate)


def _response(body: dict[str, Any], model: str) -> dict[str, Any]:
    parts, _ = reply_parts(body, model)
    n = int((body.get("generationConfig") or {}).get("candidateCount") or 1)
    candidates = [
        {"content": {"parts": parts, "role": "model"}, "finishReason": "STOP", "index": i, "safetyRatings": []}
        for i in range(n)
    ]
    return {
        "candidates": candidates,
        "usageMetadata": usage(body, parts, n),
        "modelVersion": model,
        "responseId": uuid.uuid4().hex[:22],
    }


async def _stream(request: web.Request, body: dict[str, Any], model: str, mode: str, arg: float) -> web.StreamResponse:
    response = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await response.prepare(request)
    if mode == "slow_first_chunk":
        await asyncio.sleep(arg)
    parts, _ = reply_parts(body, model)
    meta = usage(body, parts, 1)
    head = {"modelVersion": model, "responseId": uuid.uuid4().hex[:22]}
    pieces: list[list[dict[str, Any]]] = [[p] for p in parts if p.get("thought") or "functionCall" in p]
    for part in parts:
        if "text" in part and not part.get("thought"):
            words = part["text"].split(" ")
            pieces.extend([{"text": w if i == 0 else " " + w}] for i, w in enumerate(words))
    events = []
    for i, piece in enumerate(pieces):
        candidate: dict[str, Any] = {"content": {"parts": piece, "role": "model"}, "index": 0}
        last = i == len(pieces) - 1
        if last:
            candidate["finishReason"] = "STOP"
        partial = {"promptTokenCount": meta["promptTokenCount"], "totalTokenCount": meta["promptTokenCount"]}
        events.append({"candidates": [candidate], "usageMetadata": meta if last else partial, **head})
    for sent, event in enumerate(events):
        if mode == "cut_after" and sent >= arg:
            return response
        if mode == "inband_error" and sent >= arg:
            overloaded = {
                "code": 503,
                "message": "The model is overloaded. Please try again later.",
                "status": "UNAVAILABLE",
            }
            await response.write(b"data: " + json.dumps({"error": overloaded}).encode() + b"\r\n\r\n")
            return response
        await response.write(b"data: " + json.dumps(event).encode() + b"\r\n\r\n")
    await response.write_eof()
    return response


def contents_roles(body: dict[str, Any]) -> list[str]:
    return ["assistant" if c.get("role") == "model" else "user" for c in body.get("contents") or []]


def text_parts(content: Any) -> list[str]:
    return [p["text"] for p in (content or {}).get("parts") or [] if "text" in p]
