"""OpenAI messages → Anthropic turns and content blocks: pure translation, used by `anthropic.py`.

Why apart from the envelope: histories are where Anthropic is strictest, and each rule here answers one of its
refusals. Turns must alternate (same-role messages are merged); text blocks must not be blank (dropped); tool
results must open the user turn after the tool calls (tool messages become that turn, results sorted first);
tool ids must match `^[a-zA-Z0-9_-]+$` (ids from other providers get one stable safe form, used for `tool_use`
and `tool_result` alike); tool blocks need tool definitions (without tools they are told as text); thinking must
be signed and come first in its turn (unsigned reasoning is not sent back); a final assistant prefill must not
end in whitespace. `cache_control` on parts, tool messages and whole messages lands on the matching block.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_to_bytes

import orjson

from portico.core.errors import UnsupportedParameter
from portico.core.types import JSONObject
from portico.providers.base import add_turn, tool_call_arguments

IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
_SAFE_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
_UNSAFE_CHARS = re.compile(r"[^a-zA-Z0-9_-]")


def tool_id(raw: Any) -> str:
    """Ids from other providers (`call:1`, ...) get a stable, collision-free safe form; safe ids are unchanged."""
    text = str(raw or "")
    if _SAFE_ID.match(text):
        return text
    return f"{_UNSAFE_CHARS.sub('_', text)[:48]}_{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def convert_messages(messages: list[Any], provider: str, tools: bool) -> tuple[list[JSONObject], list[JSONObject]]:
    """OpenAI messages → (system text blocks, alternating turns with tool results first in each user turn)."""
    system: list[JSONObject] = []
    turns: list[JSONObject] = []
    legacy: dict[str, str] = {}
    for i, message in enumerate(messages):
        role, content = message.get("role"), message.get("content")
        control = message.get("cache_control")
        if role in ("system", "developer"):
            system.extend(_with_control(_text_blocks(content), control))
            continue
        if role == "user":
            blocks = _with_control(_user_blocks(content, provider, i), control)
        elif role == "assistant":
            blocks = _with_control(_assistant_blocks(message, i, legacy), control)
        elif role in ("tool", "function"):
            cid = message.get("tool_call_id") if role == "tool" else legacy.get(str(message.get("name")), "")
            result: JSONObject = {"type": "tool_result", "tool_use_id": tool_id(cid)}
            parts = _text_blocks(content)
            if parts:
                cached = any("cache_control" in p for p in parts)
                result["content"] = parts if cached else "\n".join(p["text"] for p in parts)
            role, blocks = "user", _with_control([result], control)
        else:
            raise UnsupportedParameter(provider, f"messages[{i}].role", f"Anthropic has no {role!r} messages")
        if not blocks:
            continue
        add_turn(turns, role, blocks)
    for turn in turns:  # Anthropic wants the answers to the previous turn's tool calls before anything else
        turn["content"].sort(key=lambda block: block["type"] != "tool_result")
        if not tools:
            turn["content"] = [_as_text(block) for block in turn["content"]]
    if turns and turns[-1]["role"] == "assistant":  # a prefill may not end in whitespace
        last = turns[-1]["content"][-1]
        if last["type"] == "text":
            last["text"] = last["text"].rstrip()
    return system, turns


def _with_control(blocks: list[JSONObject], control: Any) -> list[JSONObject]:
    """A message-level `cache_control` marks the end of that message: its last block."""
    if control and blocks and blocks[-1]["type"] not in ("thinking", "redacted_thinking"):
        blocks[-1]["cache_control"] = control
    return blocks


def _text_blocks(content: Any) -> list[JSONObject]:
    parts = [{"type": "text", "text": content}] if isinstance(content, str) else content or ()
    blocks: list[JSONObject] = []
    for part in parts:
        if part.get("type") == "text" and str(part.get("text") or "").strip():
            block: JSONObject = {"type": "text", "text": part["text"]}
            if part.get("cache_control"):
                block["cache_control"] = part["cache_control"]
            blocks.append(block)
    return blocks


def _user_blocks(content: Any, provider: str, i: int) -> list[JSONObject]:
    if not isinstance(content, list):
        return _text_blocks(content)
    blocks: list[JSONObject] = []
    for j, part in enumerate(content):
        kind, where = part.get("type"), f"messages[{i}].content[{j}]"
        if kind == "text":
            blocks.extend(_text_blocks([part]))
            continue
        if kind == "image_url":
            block = _image((part.get("image_url") or {}).get("url") or "", provider, where)
        elif kind == "file":
            block = _document(part.get("file") or {}, provider, where)
        else:
            raise UnsupportedParameter(provider, where, f"Anthropic takes text, images and documents, not {kind}")
        if part.get("cache_control"):
            block["cache_control"] = part["cache_control"]
        blocks.append(block)
    return blocks


def _data_uri(uri: str, provider: str, where: str) -> tuple[str, str]:
    header, _, data = uri[5:].partition(",")
    mime = header.split(";")[0].lower().replace("image/jpg", "image/jpeg")
    if ";base64" not in header:  # percent-encoded: Anthropic takes base64 only
        data = base64.b64encode(unquote_to_bytes(data)).decode()
    if not data:
        raise UnsupportedParameter(provider, where, "the data URI holds no data")
    return mime, data.strip()


def _image(url: str, provider: str, where: str) -> JSONObject:
    if url.startswith("data:"):
        mime, data = _data_uri(url, provider, where)
        if mime not in IMAGE_TYPES:
            raise UnsupportedParameter(provider, where, f"Anthropic takes JPEG, PNG, GIF and WebP, not {mime!r}")
        return {"type": "image", "source": {"type": "base64", "media_type": mime, "data": data}}
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise UnsupportedParameter(provider, where, "send images as an https URL or a base64 data URI")


def _document(spec: Mapping[str, Any], provider: str, where: str) -> JSONObject:
    """PDFs go as base64 or URL documents, plain text as text documents, images as image blocks."""
    data, uri = str(spec.get("file_data") or ""), str(spec.get("uri") or spec.get("url") or "")
    mime = str(spec.get("mime_type") or spec.get("mimeType") or "").lower()
    if data and not data.startswith("data:"):
        data = f"data:{mime or 'application/pdf'};base64,{data}"
    if data:
        mime, payload = _data_uri(data, provider, where)
        if mime in IMAGE_TYPES:
            return _image(data, provider, where)
        if mime == "application/pdf":
            block: JSONObject = {"type": "document", "source": {"type": "base64", "media_type": mime, "data": payload}}
        elif mime.startswith("text/"):
            try:
                text = base64.b64decode(payload, validate=True).decode("utf-8")
            except ValueError:
                raise UnsupportedParameter(provider, where, "text files must be UTF-8 in base64") from None
            block = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": text}}
        else:
            raise UnsupportedParameter(provider, where, f"Anthropic reads PDF and text documents, not {mime!r}")
    elif uri.startswith(("https://", "http://")):
        block = {"type": "document", "source": {"type": "url", "url": uri}}
    else:
        raise UnsupportedParameter(provider, where, "send file_data (a data URI) or an https file URI")
    if spec.get("filename"):
        block["title"] = str(spec["filename"])
    return block


def _assistant_blocks(message: Mapping[str, Any], i: int, legacy: dict[str, str]) -> list[JSONObject]:
    """Thinking first (Anthropic requires it), then text, then tool calls."""
    blocks: list[JSONObject] = []
    if message.get("reasoning_signature"):
        blocks.append(_thinking_block(message.get("reasoning"), message["reasoning_signature"]))
    blocks.extend(
        {"type": "redacted_thinking", "data": d} for d in str(message.get("redacted_reasoning") or "").split()
    )
    content = message.get("content")
    text_parts: list[JSONObject] = []
    for part in content if isinstance(content, list) else ():
        kind = part.get("type")
        if kind in ("reasoning", "thinking") and part.get("signature"):
            blocks.append(_thinking_block(part.get(kind), part["signature"]))
        elif kind == "redacted_reasoning" and part.get("data"):
            blocks.append({"type": "redacted_thinking", "data": part["data"]})
        elif kind in ("text", "refusal"):
            text_parts.append(
                {"type": "text", "text": part.get(kind) or "", "cache_control": part.get("cache_control")}
            )
    if not isinstance(content, list):
        text_parts = [{"type": "text", "text": content or message.get("refusal") or ""}]
    blocks.extend(_text_blocks(text_parts))
    calls = list(message.get("tool_calls") or ())
    if message.get("function_call"):
        legacy[str(message["function_call"].get("name"))] = f"legacy_{i}"
        calls.append({"id": f"legacy_{i}", "function": message["function_call"]})
    for j, call in enumerate(calls):
        function = call.get("function") or {}
        use = {"type": "tool_use", "id": tool_id(call.get("id")), "name": function.get("name")}
        blocks.append(
            {
                **use,
                "input": tool_call_arguments(
                    function, f"messages[{i}].tool_calls[{j}].function.arguments", "Anthropic"
                ),
            }
        )
    return blocks


def _thinking_block(text: Any, signature: Any) -> JSONObject:
    return {"type": "thinking", "thinking": str(text or ""), "signature": str(signature)}


def _as_text(block: JSONObject) -> JSONObject:
    """Without tool definitions Anthropic refuses tool blocks, so earlier tool turns are told as text."""
    if block["type"] == "tool_use":
        return {"type": "text", "text": f"[called {block['name']}({orjson.dumps(block['input']).decode()})]"}
    if block["type"] == "tool_result":
        content = block.get("content") or ""
        text = content if isinstance(content, str) else " ".join(p["text"] for p in content)
        return {"type": "text", "text": f"[tool result: {text}]"}
    return block
