"""A mock Cohere Chat v2 upstream (`POST /v2/chat`, JSON and typed SSE events), strict about what it accepts.

Like the real API it wants a bearer key, refuses unknown request fields and message fields, tool results that
answer no earlier tool call, `tool_choice` without tools, and `p` outside 0.01–0.99. Errors are `{"message": ...}`.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from aiohttp import web

from tests.upstreams.server import UpstreamState, read_json

REQUEST_FIELDS = {
    "model", "messages", "tools", "strict_tools", "documents", "citation_options", "response_format", "safety_mode",
    "max_tokens", "stop_sequences", "temperature", "seed", "frequency_penalty", "presence_penalty", "k", "p",
    "logprobs", "tool_choice", "thinking", "stream", "priority",
}  # fmt: skip
MESSAGE_FIELDS = {
    "user": {"role", "content"},
    "system": {"role", "content"},
    "assistant": {"role", "content", "tool_calls", "tool_plan", "citations"},
    "tool": {"role", "content", "tool_call_id"},
}
CONTENT_TYPES = {
    "user": {"text", "image_url"},
    "system": {"text"},
    "assistant": {"text", "thinking"},
    "tool": {"text", "document"},
}


class Invalid(Exception):
    pass


def validate(body: Any) -> None:
    if not isinstance(body, dict):
        raise Invalid("invalid request: body must be a JSON object")
    for key in body:
        if key not in REQUEST_FIELDS:
            raise Invalid(f'invalid request: unknown field "{key}"')
    if not body.get("model"):
        raise Invalid("invalid request: model must be specified")
    if not body.get("messages"):
        raise Invalid("invalid request: messages must not be empty")
    if body.get("tool_choice") is not None and not body.get("tools"):
        raise Invalid("invalid request: tool_choice requires tools")
    if body.get("tool_choice") not in (None, "NONE", "REQUIRED"):
        raise Invalid(f"invalid request: tool_choice must be NONE or REQUIRED, got {body['tool_choice']!r}")
    if "p" in body and not 0.01 <= body["p"] <= 0.99:
        raise Invalid("invalid request: p must be between 0.01 and 0.99")
    calls: set[str] = set()
    for i, message in enumerate(body["messages"]):
        role = message.get("role")
        if role not in MESSAGE_FIELDS:
            raise Invalid(f"invalid request: messages[{i}].role must be one of user, assistant, system, tool")
        for key in message:
            if key not in MESSAGE_FIELDS[role]:
                raise Invalid(f'invalid request: messages[{i}]: unknown field "{key}" for role {role}')
        content = message.get("content")
        if isinstance(content, list):
            for item in content:
                if item.get("type") not in CONTENT_TYPES[role]:
                    raise Invalid(f"invalid request: messages[{i}]: content type {item.get('type')!r} not allowed")
        if role == "assistant":
            if not content and not message.get("tool_calls"):
                raise Invalid(f"invalid request: messages[{i}]: assistant message must have content or tool calls")
            calls.update(c["id"] for c in message.get("tool_calls") or [])
        if role == "tool" and message.get("tool_call_id") not in calls:
            raise Invalid(f"invalid request: messages[{i}]: tool_call_id does not match a previous tool call")
        if role == "user" and not content:
            raise Invalid(f"invalid request: messages[{i}]: content must not be empty")


def _text(content: Any) -> str:
    if isinstance(content, list):
        return " ".join(str(item.get("text", "")) for item in content if item.get("type") == "text")
    return str(content or "")


def reply(body: dict[str, Any]) -> dict[str, Any]:
    """The assistant message (and finish reason) the contract script asks for."""
    messages = body["messages"]
    results = [m for m in messages if m["role"] == "tool"]
    message: dict[str, Any] = {"role": "assistant", "content": []}
    if (body.get("thinking") or {}).get("type") == "enabled":
        message["content"].append({"type": "thinking", "thinking": "Let me think."})
    if results:
        message["content"].append({"type": "text", "text": f"Tool result: {_text(results[-1]['content'])}"})
    elif body.get("tools") and body.get("tool_choice") != "NONE":
        name = body["tools"][0]["function"]["name"]
        message["tool_plan"] = f"I will call {name}."
        arguments = json.dumps({"city": "Paris"})
        message["tool_calls"] = [
            {"id": f"{name}_mock1", "type": "function", "function": {"name": name, "arguments": arguments}}
        ]
        return {"message": message, "finish_reason": "TOOL_CALL"}
    else:
        users = [m for m in messages if m["role"] == "user"]
        message["content"].append({"type": "text", "text": f"Echo from {body['model']}: {_text(users[-1]['content'])}"})
    return {"message": message, "finish_reason": "COMPLETE"}


def usage(body: dict[str, Any], message: dict[str, Any]) -> dict[str, Any]:
    prompt = max(1, sum(len(_text(m.get("content")).split()) for m in body["messages"]))
    output = sum(len(str(i.get("text") or i.get("thinking") or "").split()) for i in message.get("content") or [])
    output += 5 * len(message.get("tool_calls") or [])
    return {
        "billed_units": {"input_tokens": prompt, "output_tokens": output},
        "tokens": {"input_tokens": prompt + 10, "output_tokens": output},
    }


def _status_error(status: int, message: str) -> web.Response:
    return web.json_response({"message": message}, status=status)


def install(app: web.Application, state: UpstreamState) -> None:
    async def chat(request: web.Request) -> web.StreamResponse:
        body = await read_json(request)
        state.record(request, body)
        if not request.headers.get("authorization", "").startswith("Bearer "):
            return web.json_response({"message": "no api key supplied"}, status=401)
        model = str(body.get("model", "")) if isinstance(body, dict) else ""
        failure = state.take_failure(model)
        if failure is not None:
            headers = {"retry-after": f"{failure.retry_after:g}"} if failure.retry_after is not None else {}
            return web.json_response(
                {"id": str(uuid.uuid4()), "message": failure.message}, status=failure.status, headers=headers
            )
        if (simulated := await state.simulate(model, _status_error, request)) is not None:
            return simulated
        mode, arg = state.mode(model)
        try:
            validate(body)
        except Invalid as exc:
            return web.json_response({"id": str(uuid.uuid4()), "message": str(exc)}, status=400)
        answer = reply(body)
        if body.get("stream"):
            return await _stream(request, body, answer, mode, arg)
        return web.json_response({"id": str(uuid.uuid4()), **answer, "usage": usage(body, answer["message"])})

    app.router.add_post("/v2/chat", chat)


def _events(body: dict[str, Any], answer: dict[str, Any]) -> list[dict[str, Any]]:
    message = answer["message"]
    start = {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}
    events: list[dict[str, Any]] = [{"id": str(uuid.uuid4()), "type": "message-start", "delta": {"message": start}}]
    for index, item in enumerate(message["content"]):
        kind = item["type"]
        events.append(
            {"type": "content-start", "index": index, "delta": {"message": {"content": {"type": kind, kind: ""}}}}
        )
        for n, word in enumerate(item[kind].split(" ")):
            piece = word if n == 0 else " " + word
            events.append({"type": "content-delta", "index": index, "delta": {"message": {"content": {kind: piece}}}})
        events.append({"type": "content-end", "index": index})
    if message.get("tool_plan"):
        events.append({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": message["tool_plan"]}}})
    for index, call in enumerate(message.get("tool_calls") or []):
        first = {**call, "function": {"name": call["function"]["name"], "arguments": ""}}
        events.append({"type": "tool-call-start", "index": index, "delta": {"message": {"tool_calls": first}}})
        arguments = call["function"]["arguments"]
        for piece in (arguments[: len(arguments) // 2], arguments[len(arguments) // 2 :]):
            delta = {"message": {"tool_calls": {"function": {"arguments": piece}}}}
            events.append({"type": "tool-call-delta", "index": index, "delta": delta})
        events.append({"type": "tool-call-end", "index": index})
    end = {"finish_reason": answer["finish_reason"], "usage": usage(body, message)}
    events.append({"type": "message-end", "delta": end})
    return events


async def _stream(
    request: web.Request, body: dict[str, Any], answer: dict[str, Any], mode: str, arg: float
) -> web.StreamResponse:
    response = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await response.prepare(request)
    if mode == "slow_first_chunk":
        await asyncio.sleep(arg)
    for sent, event in enumerate(_events(body, answer)):
        if mode == "cut_after" and sent >= arg:
            return response
        if mode == "inband_error" and sent >= arg:
            failed = {"type": "message-end", "delta": {"finish_reason": "ERROR", "error": "internal error mid-stream"}}
            await response.write(f"event: message-end\ndata: {json.dumps(failed)}\n\n".encode())
            return response
        await response.write(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())
    await response.write_eof()
    return response
