"""OpenAI chat body → Bedrock Converse request body: pure translation, used by `bedrock.py`.

Decisions a client can observe (the README table lists them):
- supported: system/developer (→ `system`), text, base64 and s3:// images, PDFs and other documents, tools and
  tool_choice, stop/temperature/top_p/max tokens, top_k and reasoning (`thinking` or `reasoning_effort` → Anthropic's
  `thinking`), `cache_control` (→ `cachePoint`), `service_tier`; Converse keys (`guardrailConfig`, `outputConfig`,
  `additionalModelRequestFields`, ...) sent in the body pass through verbatim.
- emulated: `response_format` json_object/json_schema as a forced tool whose input is returned as the text;
  `tool_choice: "none"` by sending no tools (earlier tool turns are then rendered as text, which Converse requires).
- refused (400): `n` > 1, logprobs, audio, web image URLs, the legacy `functions`, JSON mode with tools or thinking.
- dropped and listed in `x-portico-dropped-params`: every other OpenAI/vLLM key (penalties, seed, logit_bias, ...).
Histories Bedrock would reject are normalised: consecutive same-role turns merged, blank text dropped, tool ids
made safe, reasoning without a signature dropped (Claude cannot verify it). Tool results go as text without a
`status` (only Claude accepts one). `tools[].function.strict` is not forwarded: the OpenAI SDK sets it by default
and Bedrock's strict tool use exists for few models, so forwarding it would fail requests to the others.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson

from portico.core.errors import UnsupportedParameter
from portico.core.types import JSONObject
from portico.providers.base import add_turn, tool_call_arguments
from portico.providers.bedrock_stream import JSON_TOOL

EFFORT_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384, "xhigh": 32768}
"""`reasoning_effort` (and orq's `thinking_level`) → Anthropic `budget_tokens`; 1024 is Anthropic's minimum."""
THINKING_HEADROOM = 4096
"""Added to the budget for `maxTokens` when the client set none: Anthropic requires max_tokens > budget_tokens."""
CONSUMED = frozenset(
    {
        "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k", "stop", "tools",
        "tool_choice", "response_format", "reasoning_effort", "thinking", "stream_options", "n", "logprobs",
        "top_logprobs", "service_tier", "modalities", "audio",
    }
)  # fmt: skip
PASSTHROUGH = frozenset(
    {
        "additionalModelRequestFields", "guardrailConfig", "performanceConfig", "requestMetadata", "promptVariables",
        "additionalModelResponseFieldPaths", "outputConfig", "serviceTier",
    }
)  # fmt: skip
IMAGE_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}
DOCUMENT_FORMATS = {
    "application/pdf": "pdf",
    "text/csv": "csv",
    "application/msword": "doc",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.ms-excel": "xls",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "text/html": "html",
    "text/plain": "txt",
    "text/markdown": "md",
}
_EXTENSIONS = {**{f: f for f in DOCUMENT_FORMATS.values()}, **{f: f for f in IMAGE_FORMATS.values()}, "jpg": "jpeg"}
_UNSAFE_ID = re.compile(r"[^A-Za-z0-9_-]")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9\s\-()\[\]]")


def to_converse(body: JSONObject, provider: str) -> tuple[JSONObject, tuple[str, ...]]:
    """An OpenAI chat body → (Converse body, OpenAI keys dropped because Converse has no equivalent)."""
    _refuse(body, provider)
    system, messages = convert_messages(body.get("messages") or [], provider)
    out: JSONObject = {"messages": messages}
    if system:
        out["system"] = system
    inference = _inference(body)
    thinking = _thinking(body)
    extra: JSONObject = {}
    if thinking is not None:
        extra["thinking"] = thinking
        if "budget_tokens" in thinking and "maxTokens" not in inference:
            inference["maxTokens"] = thinking["budget_tokens"] + THINKING_HEADROOM
    if body.get("top_k") is not None:
        extra["top_k"] = body["top_k"]
    if inference:
        out["inferenceConfig"] = inference
    tool_config = _tool_config(body, provider, thinking is not None)
    if tool_config is not None:
        out["toolConfig"] = tool_config
    else:
        _tool_blocks_as_text(messages)
    if body.get("service_tier") in ("default", "flex", "priority"):
        out["serviceTier"] = {"type": body["service_tier"]}
    for key in PASSTHROUGH.intersection(body):
        out[key] = body[key]
    if extra:
        client = body.get("additionalModelRequestFields")
        out["additionalModelRequestFields"] = {**extra, **(client if isinstance(client, dict) else {})}
    return out, tuple(sorted(k for k in body if k not in CONSUMED and k not in PASSTHROUGH))


def _refuse(body: JSONObject, provider: str) -> None:
    if (body.get("n") or 1) > 1:
        raise UnsupportedParameter(provider, "n", "Bedrock returns one choice per request")
    if body.get("logprobs") or body.get("top_logprobs"):
        raise UnsupportedParameter(provider, "logprobs", "Bedrock Converse returns no log probabilities")
    if body.get("audio") or "audio" in (body.get("modalities") or ()):
        raise UnsupportedParameter(provider, "audio", "Bedrock Converse answers in text only")
    for legacy in ("functions", "function_call"):
        if body.get(legacy) is not None:
            raise UnsupportedParameter(provider, legacy, "use tools and tool_choice")


def convert_messages(messages: list[Any], provider: str) -> tuple[list[JSONObject], list[JSONObject]]:
    """OpenAI messages → (Converse `system` blocks, alternating user/assistant turns)."""
    system: list[JSONObject] = []
    turns: list[JSONObject] = []
    for i, message in enumerate(messages):
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            system.extend(_text_blocks(content))
            continue
        if role == "user":
            blocks = _user_blocks(content, provider, i)
        elif role == "assistant":
            blocks = _assistant_blocks(message, provider, i)
        elif role == "tool":
            role = "user"
            texts = [b for b in _text_blocks(content) if "text" in b]
            result = {"toolUseId": tool_id(message.get("tool_call_id")), "content": texts}
            blocks = [{"toolResult": result}, *_cache_point(message.get("cache_control"))]
        else:
            raise UnsupportedParameter(provider, f"messages[{i}].role", f"Bedrock has no {role!r} messages")
        if not blocks:
            continue
        add_turn(turns, role, blocks)
    return system, turns


def _text_blocks(content: Any) -> list[JSONObject]:
    if isinstance(content, str):
        return [{"text": content}] if content.strip() else []
    blocks: list[JSONObject] = []
    for part in content or ():
        if part.get("type") == "text" and str(part.get("text") or "").strip():
            blocks.append({"text": part["text"]})
            blocks.extend(_cache_point(part.get("cache_control")))
    return blocks


def _cache_point(control: Any) -> list[JSONObject]:
    if not isinstance(control, dict):
        return []
    point: JSONObject = {"type": "default"}
    if control.get("ttl"):
        point["ttl"] = control["ttl"]
    return [{"cachePoint": point}]


def _user_blocks(content: Any, provider: str, i: int) -> list[JSONObject]:
    if isinstance(content, str):
        return _text_blocks(content)
    blocks: list[JSONObject] = []
    for j, part in enumerate(content or ()):
        kind, where = part.get("type"), f"messages[{i}].content[{j}]"
        if kind == "text":
            blocks.extend(_text_blocks([part]))
            continue
        if kind == "image_url":
            blocks.append(_media((part.get("image_url") or {}).get("url") or "", None, None, provider, where))
        elif kind == "file":
            spec = part.get("file") or {}
            if spec.get("file_id"):
                raise UnsupportedParameter(provider, f"{where}.file.file_id", "send the file inline as file_data")
            mime = spec.get("mime_type") or spec.get("mimeType")
            source = spec.get("file_data") or spec.get("uri") or ""
            blocks.append(_media(source, mime, spec.get("filename") or f"document-{i}-{j}", provider, where))
        else:
            raise UnsupportedParameter(provider, where, f"Bedrock Converse takes no {kind} parts")
        blocks.extend(_cache_point(part.get("cache_control")))
    return blocks


def _media(source: str, mime: str | None, filename: str | None, provider: str, where: str) -> JSONObject:
    """A data: URI (or bare base64 with a mime type) or an s3:// URI → an image or document block."""
    if source.startswith("s3://"):
        fmt = _EXTENSIONS.get(source.rsplit(".", 1)[-1].lower())
        location: JSONObject = {"s3Location": {"uri": source}}
        if fmt is None:
            raise UnsupportedParameter(provider, where, f"cannot tell the format of {source!r} from its extension")
        is_image = fmt in IMAGE_FORMATS.values()
    elif source.startswith("data:") or (mime and source and "://" not in source):
        head, _, data = source.partition(",") if source.startswith("data:") else (f"data:{mime};base64", "", source)
        mime = head[5:].split(";", 1)[0].lower() or mime
        if ";base64" not in head or not data:
            raise UnsupportedParameter(provider, where, "data URIs must be base64-encoded")
        fmt = IMAGE_FORMATS.get(mime or "") or DOCUMENT_FORMATS.get(mime or "")
        if fmt is None:
            raise UnsupportedParameter(provider, where, f"Bedrock takes no {mime} content")
        location = {"bytes": data.strip()}
        is_image = mime in IMAGE_FORMATS
    else:
        raise UnsupportedParameter(provider, where, "Bedrock takes media as base64 data: URIs or s3:// URIs only")
    if is_image:
        return {"image": {"format": fmt, "source": location}}
    stem = (filename or "document").rsplit(".", 1)[0]
    name = " ".join(_UNSAFE_NAME.sub(" ", stem).split()) or "document"
    return {"document": {"format": fmt, "name": name, "source": location}}


def _assistant_blocks(message: JSONObject, provider: str, i: int) -> list[JSONObject]:
    """Reasoning first (Anthropic requires it), then text, then tool calls."""
    blocks: list[JSONObject] = []
    if message.get("reasoning") and message.get("reasoning_signature"):
        text = {"text": message["reasoning"], "signature": message["reasoning_signature"]}
        blocks.append({"reasoningContent": {"reasoningText": text}})
    if message.get("redacted_reasoning"):
        blocks.append({"reasoningContent": {"redactedContent": message["redacted_reasoning"]}})
    content = message.get("content")
    if isinstance(content, list):
        for part in content:
            kind = part.get("type")
            if kind == "reasoning" and part.get("signature"):
                text = {"text": part.get("reasoning") or "", "signature": part["signature"]}
                blocks.append({"reasoningContent": {"reasoningText": text}})
            elif kind == "redacted_reasoning" and part.get("data"):
                blocks.append({"reasoningContent": {"redactedContent": part["data"]}})
            elif kind in ("text", "refusal"):
                blocks.extend(_text_blocks(part.get("text") or part.get("refusal") or ""))
    else:
        blocks.extend(_text_blocks(content or message.get("refusal") or ""))
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        use = {
            "toolUseId": tool_id(call.get("id")),
            "name": function.get("name"),
            "input": tool_call_arguments(function, f"messages[{i}].tool_calls", "Bedrock"),
        }
        blocks.append({"toolUse": use})
    return blocks


def tool_id(raw: Any) -> str:
    """Converse (and Claude behind it) accept `[A-Za-z0-9_-]{1,64}`; other ids get a stable, collision-free form."""
    text = str(raw or "")
    clean = _UNSAFE_ID.sub("_", text)
    if clean == text and 0 < len(text) <= 64:
        return text
    return f"{clean[:47]}_{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def _tool_config(body: JSONObject, provider: str, thinking: bool) -> JSONObject | None:
    tools = body.get("tools") or []
    json_tool = _json_tool(body.get("response_format"), provider)
    if json_tool is not None:
        why = "Bedrock JSON mode is a forced tool, which cannot be combined with"
        if tools:
            raise UnsupportedParameter(provider, "response_format", f"{why} tools")
        if thinking:
            raise UnsupportedParameter(provider, "response_format", f"{why} thinking (pass outputConfig instead)")
        return {"tools": [json_tool], "toolChoice": {"tool": {"name": JSON_TOOL}}}
    choice = body.get("tool_choice")
    if not tools or choice == "none":
        return None
    specs: list[JSONObject] = []
    for tool in tools:
        function = tool.get("function") or {}
        if tool.get("type", "function") != "function" or function.get("name") == JSON_TOOL:
            raise UnsupportedParameter(provider, "tools", f"Bedrock takes function tools not named {JSON_TOOL}")
        spec: JSONObject = {"name": function.get("name")}
        if function.get("description"):
            spec["description"] = function["description"]
        spec["inputSchema"] = {"json": function.get("parameters") or {"type": "object", "properties": {}}}
        specs.append({"toolSpec": spec})
    config: JSONObject = {"tools": specs}
    if choice == "required":
        config["toolChoice"] = {"any": {}}
    elif choice == "auto":
        config["toolChoice"] = {"auto": {}}
    elif isinstance(choice, dict):
        config["toolChoice"] = {"tool": {"name": (choice.get("function") or {}).get("name")}}
    return config


def _json_tool(response_format: Any, provider: str) -> JSONObject | None:
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind in (None, "text"):
        return None
    if kind == "json_object":
        schema: Any = {"type": "object"}
        description = "Give the answer as a JSON object."
    elif kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema") or {"type": "object"}
        description = spec.get("description") or f"Give the answer as JSON ({spec.get('name') or 'response'})."
    else:
        raise UnsupportedParameter(provider, "response_format", f"Bedrock has no {kind} output")
    return {"toolSpec": {"name": JSON_TOOL, "description": description, "inputSchema": {"json": schema}}}


def _tool_blocks_as_text(turns: list[JSONObject]) -> None:
    """Converse rejects toolUse/toolResult blocks without a toolConfig, so with no tools they are told as text."""
    for turn in turns:
        for k, block in enumerate(turn["content"]):
            if "toolUse" in block:
                use = block["toolUse"]
                turn["content"][k] = {"text": f"[called {use['name']}({orjson.dumps(use['input']).decode()})]"}
            elif "toolResult" in block:
                text = " ".join(b.get("text", "") for b in block["toolResult"]["content"])
                turn["content"][k] = {"text": f"[tool result: {text}]"}


def _inference(body: JSONObject) -> JSONObject:
    config: JSONObject = {}
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens is not None:
        config["maxTokens"] = int(max_tokens)
    if body.get("temperature") is not None:
        config["temperature"] = body["temperature"]
    if body.get("top_p") is not None:
        config["topP"] = body["top_p"]
    stop = body.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else [s for s in stop if s]
    return config


def _thinking(body: JSONObject) -> JSONObject | None:
    """Anthropic-on-Bedrock `thinking`, from the orq/Portkey `thinking` object or OpenAI's `reasoning_effort`."""
    spec = body.get("thinking")
    if isinstance(spec, dict):
        kind = spec.get("type")
        if kind == "adaptive":
            return {"type": "adaptive"}
        if kind == "enabled":
            budget = spec.get("budget_tokens") or EFFORT_BUDGETS.get(str(spec.get("thinking_level")), 8192)
            return {"type": "enabled", "budget_tokens": int(budget)}
        return None
    effort = body.get("reasoning_effort")
    return {"type": "enabled", "budget_tokens": EFFORT_BUDGETS[effort]} if effort in EFFORT_BUDGETS else None
