"""A mock Anthropic Messages upstream (`POST /v1/messages`, JSON and named SSE events), strict about what it takes.

Like the real API it wants `x-api-key` and `anthropic-version`, and answers `invalid_request_error` (400) for
unknown fields at any level, blank text, a missing `max_tokens`, unsafe tool ids, tool calls without results at
the start of the next user turn (and results without calls), tool blocks without tool definitions, roles that do
not alternate, `system` messages, unsigned thinking in history, and thinking combined with a temperature other
than 1, top_k or a forced tool. Errors are `{"type": "error", "error": {"type", "message"}, "request_id"}`.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from typing import Any

from aiohttp import web

from tests.upstreams.server import UpstreamState, credential_of, read_json

API_KEY = "sk-ant-upstream-key"
REQUEST_FIELDS = {
    "model", "messages", "max_tokens", "system", "metadata", "stop_sequences", "stream", "temperature", "top_p",
    "top_k", "tools", "tool_choice", "thinking", "service_tier",
}  # fmt: skip
BLOCK_FIELDS = {
    "text": {"type", "text", "cache_control", "citations"},
    "image": {"type", "source", "cache_control"},
    "document": {"type", "source", "title", "context", "citations", "cache_control"},
    "tool_use": {"type", "id", "name", "input", "cache_control"},
    "tool_result": {"type", "tool_use_id", "content", "is_error", "cache_control"},
    "thinking": {"type", "thinking", "signature"},
    "redacted_thinking": {"type", "data"},
}
ROLE_BLOCKS = {
    "user": {"text", "image", "document", "tool_result"},
    "assistant": {"text", "tool_use", "thinking", "redacted_thinking"},
}
SOURCES = {
    "base64": {"type", "media_type", "data"},
    "url": {"type", "url"},
    "text": {"type", "media_type", "data"},
}
TOOL_FIELDS = {"name", "description", "input_schema", "cache_control"}
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}
TOOL_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


class Invalid(Exception):
    pass


def error_body(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}, "request_id": f"req_{uuid.uuid4().hex[:24]}"}


def _check_keys(where: str, item: Any, allowed: set[str]) -> None:
    if not isinstance(item, dict):
        raise Invalid(f"{where}: Input should be an object")
    for key in item:
        if key not in allowed:
            raise Invalid(f"{where}.{key}: Extra inputs are not permitted")


def _check_cache_control(where: str, block: dict[str, Any]) -> None:
    control = block.get("cache_control")
    if control is not None:
        _check_keys(f"{where}.cache_control", control, {"type", "ttl"})
        if control.get("type") != "ephemeral" or control.get("ttl") not in (None, "5m", "1h"):
            raise Invalid(f"{where}.cache_control: invalid cache control")


def _check_block(where: str, role: str, block: Any, has_tools: bool) -> None:
    kind = block.get("type") if isinstance(block, dict) else None
    if kind not in ROLE_BLOCKS[role]:
        raise Invalid(f"{where}.type: blocks of type {kind!r} are not allowed in {role} messages")
    _check_keys(where, block, BLOCK_FIELDS[kind])
    _check_cache_control(where, block)
    if kind == "text" and not str(block.get("text") or "").strip():
        raise Invalid("messages: text content blocks must contain non-whitespace text")
    if kind in ("image", "document"):
        source = block.get("source") or {}
        if source.get("type") not in SOURCES:
            raise Invalid(f"{where}.source.type: unknown source type")
        _check_keys(f"{where}.source", source, SOURCES[source["type"]])
    if kind in ("tool_use", "tool_result"):
        if not has_tools:
            raise Invalid(f"{where}: tool_use and tool_result blocks require `tools` to be defined")
        ident = block.get("id") if kind == "tool_use" else block.get("tool_use_id")
        if not TOOL_ID.match(str(ident or "")):
            raise Invalid(f"{where}.{'id' if kind == 'tool_use' else 'tool_use_id'}: String should match pattern")
    if kind == "tool_use" and not isinstance(block.get("input"), dict):
        raise Invalid(f"{where}.input: Input should be a valid dictionary")
    if kind == "tool_result" and isinstance(block.get("content"), list):
        for k, part in enumerate(block["content"]):
            _check_block(f"{where}.content.{k}", "user", part, has_tools)
    if kind == "thinking" and not block.get("signature"):
        raise Invalid(f"{where}.thinking.signature: Field required")


def _check_messages(messages: Any, has_tools: bool) -> None:
    if not isinstance(messages, list) or not messages:
        raise Invalid("messages: at least one message is required")
    pending: set[str] = set()
    for i, message in enumerate(messages):
        where = f"messages.{i}"
        role = message.get("role") if isinstance(message, dict) else None
        if role == "system":
            raise Invalid(
                'messages: Unexpected role "system". The Messages API accepts a top-level `system` parameter, '
                'not "system" as an input message role.'
            )
        if role not in ROLE_BLOCKS:
            raise Invalid(f"{where}.role: Input should be 'user' or 'assistant'")
        _check_keys(where, message, {"role", "content"})
        if i and messages[i - 1]["role"] == role:
            raise Invalid('messages: roles must alternate between "user" and "assistant"')
        content = message.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if not isinstance(blocks, list) or not blocks:
            raise Invalid(f"{where}: all messages must have non-empty content except for the optional final assistant")
        for j, block in enumerate(blocks):
            _check_block(f"{where}.content.{j}", role, block, has_tools)
        results = []
        for block in blocks:
            if block["type"] != "tool_result":
                break
            results.append(block["tool_use_id"])
        stray = [b["tool_use_id"] for b in blocks if b["type"] == "tool_result" and b["tool_use_id"] not in pending]
        if stray:
            raise Invalid(
                f"{where}.content: unexpected `tool_use_id` found in `tool_result` blocks: {stray[0]}. Each "
                "`tool_result` block must have a corresponding `tool_use` block in the previous message."
            )
        missing = pending - set(results)
        if missing:
            raise Invalid(
                f"messages.{i - 1}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                f"{sorted(missing)[0]}. Each `tool_use` block must have a corresponding `tool_result` block in "
                "the next message."
            )
        pending = {b["id"] for b in blocks if b["type"] == "tool_use"}
        last = blocks[-1]
        if (
            role == "assistant"
            and i == len(messages) - 1
            and last["type"] == "text"
            and last["text"] != last["text"].rstrip()
        ):
            raise Invalid("messages: final assistant content cannot end with trailing whitespace")


def _check_tools(body: dict[str, Any]) -> None:
    for i, tool in enumerate(body.get("tools") or []):
        _check_keys(f"tools.{i}", tool, TOOL_FIELDS)
        _check_cache_control(f"tools.{i}", tool)
        if not TOOL_NAME.match(str(tool.get("name") or "")):
            raise Invalid(f"tools.{i}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'")
        if not isinstance(tool.get("input_schema"), dict) or tool["input_schema"].get("type") != "object":
            raise Invalid(f"tools.{i}.input_schema: Input should be an object schema")
    choice = body.get("tool_choice")
    if choice is not None:
        if not body.get("tools"):
            raise Invalid("tool_choice: tool_choice may only be specified while providing tools")
        kind = choice.get("type")
        allowed = {"auto": {"type", "disable_parallel_tool_use"}, "any": {"type", "disable_parallel_tool_use"}}
        allowed |= {"tool": {"type", "name", "disable_parallel_tool_use"}, "none": {"type"}}
        if kind not in allowed:
            raise Invalid(f"tool_choice.type: Input tag {kind!r} does not match any of the expected tags")
        _check_keys("tool_choice", choice, allowed[kind])
        if kind == "tool" and choice.get("name") not in [t["name"] for t in body["tools"]]:
            raise Invalid(f"tool_choice.name: tool {choice.get('name')!r} is not among the tools")


def _check_thinking(body: dict[str, Any]) -> None:
    thinking = body.get("thinking")
    if thinking is None:
        return
    kind = thinking.get("type")
    if kind == "enabled":
        _check_keys("thinking", thinking, {"type", "budget_tokens"})
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or budget < 1024:
            raise Invalid("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
        if body["max_tokens"] <= budget:
            raise Invalid("`max_tokens` must be greater than `thinking.budget_tokens`")
    elif kind in ("disabled", "adaptive"):
        _check_keys("thinking", thinking, {"type"})
    else:
        raise Invalid(f"thinking.type: Input tag {kind!r} does not match any of the expected tags")
    if kind == "disabled":
        return
    if body.get("temperature", 1) != 1:
        raise Invalid("`temperature` may only be set to 1 when thinking is enabled.")
    if "top_k" in body:
        raise Invalid("`top_k` is not compatible with thinking.")
    if body.get("top_p", 1) < 0.95:
        raise Invalid("`top_p` must be greater than or equal to 0.95 when thinking is enabled.")
    if (body.get("tool_choice") or {}).get("type") in ("any", "tool"):
        raise Invalid("Thinking may not be enabled when tool_choice forces tool use.")


def validate(body: Any) -> None:
    if not isinstance(body, dict):
        raise Invalid("Input should be an object")
    for key in body:
        if key not in REQUEST_FIELDS:
            raise Invalid(f"{key}: Extra inputs are not permitted")
    if not body.get("model"):
        raise Invalid("model: Field required")
    if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
        raise Invalid("max_tokens: Field required")
    system = body.get("system")
    if isinstance(system, list):
        for i, block in enumerate(system):
            _check_keys(f"system.{i}", block, {"type", "text", "cache_control"})
            _check_cache_control(f"system.{i}", block)
            if block.get("type") != "text" or not str(block.get("text") or "").strip():
                raise Invalid("system: text content blocks must contain non-whitespace text")
    elif system is not None and not isinstance(system, str):
        raise Invalid("system: Input should be a valid string or list")
    if body.get("metadata") is not None:
        _check_keys("metadata", body["metadata"], {"user_id"})
    if body.get("service_tier") not in (None, "auto", "standard_only"):
        raise Invalid("service_tier: Input should be 'auto' or 'standard_only'")
    if not 0 <= body.get("temperature", 0) <= 1:
        raise Invalid("temperature: Input should be less than or equal to 1")
    stops = body.get("stop_sequences")
    if stops is not None and (not isinstance(stops, list) or not all(isinstance(s, str) and s.strip() for s in stops)):
        raise Invalid("stop_sequences: each stop sequence must be a non-blank string")
    _check_tools(body)
    _check_thinking(body)
    _check_messages(body.get("messages"), bool(body.get("tools")))


def _texts(content: Any) -> str:
    if isinstance(content, str):
        return content
    return " ".join(str(b.get("text", "")) for b in content or [] if b.get("type") == "text")


def reply(body: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    """The content blocks and stop reason the contract script asks for."""
    last = body["messages"][-1]
    blocks = last["content"] if isinstance(last["content"], list) else []
    results = [b for b in blocks if b.get("type") == "tool_result"]
    content: list[dict[str, Any]] = []
    if (body.get("thinking") or {}).get("type") in ("enabled", "adaptive"):
        content.append({"type": "thinking", "thinking": "Let me think.", "signature": "sig-1"})
    choice = body.get("tool_choice") or {}
    if results:
        result = results[-1].get("content") or ""
        content.append({"type": "text", "text": f"Tool result: {_texts(result)}"})
    elif body.get("tools") and choice.get("type") != "none":
        name = choice.get("name") if choice.get("type") == "tool" else body["tools"][0]["name"]
        if choice.get("type") != "tool":
            content.append({"type": "text", "text": f"I will call {name}."})
        content.append({"type": "tool_use", "id": f"toolu_mock_{name}", "name": name, "input": {"city": "Paris"}})
        return content, "tool_use"
    else:
        users = [m for m in body["messages"] if m["role"] == "user"]
        content.append({"type": "text", "text": f"Echo from {body['model']}: {_texts(users[-1]['content'])}"})
    return content, "end_turn"


def usage(body: dict[str, Any], content: list[dict[str, Any]]) -> dict[str, Any]:
    prompt = max(1, sum(len(_texts(m["content"]).split()) for m in body["messages"]))
    output = sum(len(str(b.get("text") or b.get("thinking") or "").split()) for b in content)
    output += 5 * sum(1 for b in content if b["type"] == "tool_use")
    cached = "cache_control" in json.dumps(body)
    return {
        "input_tokens": prompt,
        "cache_creation_input_tokens": 7 if cached else 0,
        "cache_read_input_tokens": 11 if cached else 0,
        "output_tokens": output,
    }


def _status_error(status: int, message: str) -> web.Response:
    return web.json_response(error_body(ERROR_TYPES.get(status, "api_error"), message), status=status)


def install(app: web.Application, state: UpstreamState) -> None:
    async def messages(request: web.Request) -> web.StreamResponse:
        body = await read_json(request)
        state.record(request, body)
        if request.headers.get("x-api-key") != API_KEY:
            return web.json_response(error_body("authentication_error", "invalid x-api-key"), status=401)
        if not request.headers.get("anthropic-version"):
            return web.json_response(
                error_body("invalid_request_error", "anthropic-version: header is required"), status=400
            )
        model = str(body.get("model", "")) if isinstance(body, dict) else ""
        failure = state.take_failure(model)
        if failure is not None:
            headers = {"retry-after": f"{failure.retry_after:g}"} if failure.retry_after is not None else {}
            kind = ERROR_TYPES.get(failure.status, "api_error")
            return web.json_response(error_body(kind, failure.message), status=failure.status, headers=headers)
        if (simulated := await state.simulate(model, _status_error, request)) is not None:
            return simulated
        mode, arg = state.mode(model)
        try:
            validate(body)
        except Invalid as exc:
            return web.json_response(error_body("invalid_request_error", str(exc)), status=400)
        content, stop_reason = reply(body)
        message = {
            "id": f"msg_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": usage(body, content),
        }
        if body.get("stream"):
            return await _stream(request, message, mode, arg)
        return web.json_response(message)

    app.router.add_post("/v1/messages", messages)


def events(message: dict[str, Any]) -> list[dict[str, Any]]:
    """A message as Anthropic streams it: start, a ping, each block start/deltas/stop, message_delta, stop."""
    start_usage = {**message["usage"], "output_tokens": 1}
    start = {**message, "content": [], "stop_reason": None, "usage": start_usage}
    out: list[dict[str, Any]] = [{"type": "message_start", "message": start}, {"type": "ping"}]
    for index, block in enumerate(message["content"]):
        kind = block["type"]
        empty = {"text": {"text": ""}, "thinking": {"thinking": "", "signature": ""}, "tool_use": {"input": {}}}[kind]
        head = {k: v for k, v in block.items() if k in ("type", "id", "name")}
        out.append({"type": "content_block_start", "index": index, "content_block": {**head, **empty}})
        if kind in ("text", "thinking"):
            for n, word in enumerate(block[kind].split(" ")):
                delta = {"type": f"{kind}_delta", kind: word if n == 0 else " " + word}
                out.append({"type": "content_block_delta", "index": index, "delta": delta})
        if kind == "thinking":
            delta = {"type": "signature_delta", "signature": block["signature"]}
            out.append({"type": "content_block_delta", "index": index, "delta": delta})
        if kind == "tool_use":
            arguments = json.dumps(block["input"])
            for piece in ("", arguments[: len(arguments) // 2], arguments[len(arguments) // 2 :]):
                delta = {"type": "input_json_delta", "partial_json": piece}
                out.append({"type": "content_block_delta", "index": index, "delta": delta})
        out.append({"type": "content_block_stop", "index": index})
    delta = {"stop_reason": message["stop_reason"], "stop_sequence": None}
    out.append({"type": "message_delta", "delta": delta, "usage": {"output_tokens": message["usage"]["output_tokens"]}})
    out.append({"type": "message_stop"})
    return out


async def _stream(request: web.Request, message: dict[str, Any], mode: str, arg: float) -> web.StreamResponse:
    response = web.StreamResponse(headers={"content-type": "text/event-stream; charset=utf-8"})
    await response.prepare(request)
    if mode == "slow_first_chunk":
        await asyncio.sleep(arg)
    for sent, event in enumerate(events(message)):
        if mode == "cut_after" and sent >= arg:
            return response
        if mode in ("inband_error", "inband_echo_key") and sent >= arg:
            text = "Overloaded"
            if mode == "inband_echo_key":
                text = f"invalid x-api-key {credential_of(request)}"
                await asyncio.sleep(0.05)  # a read of its own, after the content went out
            failed = error_body("overloaded_error", text)
            await response.write(f"event: error\ndata: {json.dumps(failed)}\n\n".encode())
            return response
        if mode == "garbage_after" and sent >= arg:  # valid JSON the API never sends: an index that is no number
            bad = {"type": "content_block_delta", "index": "first", "delta": {"type": "text_delta", "text": "x"}}
            await asyncio.sleep(0.05)  # a read of its own, after the content went out
            await response.write(f"event: content_block_delta\ndata: {json.dumps(bad)}\n\n".encode())
            return response
        await response.write(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())
    await response.write_eof()
    return response
