"""A mock OpenAI Chat Completions upstream speaking the real wire format (JSON and SSE), with scripted failures."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiohttp import web

from tests.upstreams.server import UpstreamState, credential_of, last_user_text, read_json, words_in


def reply_text(body: dict[str, Any]) -> str:
    results = [m.get("content") for m in body.get("messages") or [] if isinstance(m, dict) and m.get("role") == "tool"]
    if results:
        return f"Tool result: {results[-1]}"
    return f"Echo from {body.get('model')}: {last_user_text(body.get('messages'))}"


def _wants_tool(body: dict[str, Any]) -> dict[str, Any] | None:
    tools = body.get("tools") or []
    answered = any(isinstance(m, dict) and m.get("role") == "tool" for m in body.get("messages") or [])
    if not tools or body.get("tool_choice") == "none" or answered:
        return None
    function = tools[0].get("function") or {}
    return {
        "id": "call_mock_1",
        "type": "function",
        "function": {"name": function.get("name", "tool"), "arguments": json.dumps({"city": "Paris"})},
    }


def _usage(body: dict[str, Any], text: str, n: int) -> dict[str, Any]:
    prompt, completion = words_in(body.get("messages")), len(text.split()) * n
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def error_body(status: int, message: str) -> dict[str, Any]:
    kind = {
        400: "invalid_request_error",
        401: "authentication_error",
        404: "not_found_error",
        429: "rate_limit_error",
    }.get(status, "server_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def _status_error(status: int, message: str) -> web.Response:
    return web.json_response(error_body(status, message), status=status)


def install(app: web.Application, state: UpstreamState) -> None:
    async def chat(request: web.Request) -> web.StreamResponse:
        body = await read_json(request)
        state.record(request, body)
        if not isinstance(body, dict):
            return web.json_response(error_body(400, "body must be a JSON object"), status=400)
        model = str(body.get("model", ""))
        failure = state.take_failure(model)
        if failure is not None:
            headers = {"retry-after": str(failure.retry_after)} if failure.retry_after is not None else {}
            return web.json_response(
                error_body(failure.status, failure.message), status=failure.status, headers=headers
            )
        if (simulated := await state.simulate(model, _status_error, request)) is not None:
            return simulated
        mode, arg = state.mode(model)
        if body.get("stream"):
            return await _stream(request, body, mode, arg, state)
        response = web.json_response(completion(body))
        # OpenAI's edge sets bot-management cookies on API answers; a gateway must not replay them for others.
        response.set_cookie("__cf_bm", f"upstream-{len(state.requests)}", path="/")
        return response

    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/chat/completions", chat)
    app.router.add_post("/openai/deployments/{deployment}/chat/completions", chat)


def completion(body: dict[str, Any]) -> dict[str, Any]:
    text, n = reply_text(body), int(body.get("n") or 1)
    tool = _wants_tool(body)
    choices = []
    for index in range(n):
        message: dict[str, Any] = {"role": "assistant", "content": None if tool else text, "refusal": None}
        if tool:
            message["tool_calls"] = [tool]
        choices.append(
            {"index": index, "message": message, "logprobs": None, "finish_reason": "tool_calls" if tool else "stop"}
        )
    return {
        "id": "chatcmpl-mock",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model"),
        "choices": choices,
        "usage": _usage(body, text, n),
        "system_fingerprint": "fp_mock",
    }


async def _stream(
    request: web.Request, body: dict[str, Any], mode: str, arg: float, state: UpstreamState
) -> web.StreamResponse:
    response = web.StreamResponse(headers={"content-type": "text/event-stream", "cache-control": "no-cache"})
    await response.prepare(request)
    if mode == "slow_first_chunk":
        await asyncio.sleep(arg)
    while mode == "keepalive_only":  # SSE comments every `arg` s and never an event, until the gateway hangs up
        try:
            await response.write(b": keep-alive\n\n")
            await asyncio.sleep(arg)
        except (asyncio.CancelledError, ConnectionResetError):
            state.notes.append("stream-cancelled")
            raise
    base = {
        "id": "chatcmpl-mock",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model"),
        "system_fingerprint": "fp_mock",
    }
    text, n = reply_text(body), int(body.get("n") or 1)
    tool = _wants_tool(body)
    events: list[dict[str, Any]] = []
    for index in range(n):
        events.append(
            {
                **base,
                "choices": [
                    {
                        "index": index,
                        "delta": {"role": "assistant", "content": ""},
                        "logprobs": None,
                        "finish_reason": None,
                    }
                ],
            }
        )
        if tool:
            events.append(
                {
                    **base,
                    "choices": [
                        {
                            "index": index,
                            "delta": {
                                "tool_calls": [
                                    {
                                        "index": 0,
                                        "id": tool["id"],
                                        "type": "function",
                                        "function": {"name": tool["function"]["name"], "arguments": ""},
                                    }
                                ]
                            },
                            "finish_reason": None,
                        }
                    ],
                }
            )
            events.append(
                {
                    **base,
                    "choices": [
                        {
                            "index": index,
                            "delta": {
                                "tool_calls": [{"index": 0, "function": {"arguments": tool["function"]["arguments"]}}]
                            },
                            "finish_reason": None,
                        }
                    ],
                }
            )
        else:
            for position, word in enumerate(text.split(" ")):
                piece = word if position == 0 else " " + word
                events.append(
                    {
                        **base,
                        "choices": [
                            {"index": index, "delta": {"content": piece}, "logprobs": None, "finish_reason": None}
                        ],
                    }
                )
        events.append(
            {
                **base,
                "choices": [
                    {"index": index, "delta": {}, "logprobs": None, "finish_reason": "tool_calls" if tool else "stop"}
                ],
            }
        )
    if (body.get("stream_options") or {}).get("include_usage"):
        events.append({**base, "choices": [], "usage": _usage(body, text, n)})
    try:
        for sent, event in enumerate(events):
            if mode == "cut_after" and sent >= arg:
                return response  # the connection ends without [DONE]
            if mode == "inband_error" and sent >= arg:
                await response.write(
                    b'data: {"error": {"message": "overloaded mid-stream", "type": "server_error"}}\n\n'
                )
                return response
            if mode == "inband_echo_key" and sent >= arg:
                await asyncio.sleep(0.05)  # a read of its own, after the content went out
                message = f"Incorrect API key provided: {credential_of(request)}."
                failed = {"error": {"message": message, "type": "invalid_request_error", "code": "invalid_api_key"}}
                await response.write(b"data: " + json.dumps(failed).encode() + b"\n\n")
                return response
            if mode == "drip" and sent:
                await asyncio.sleep(arg)
            if mode == "stall_after" and sent == arg:
                await asyncio.sleep(5)  # goes quiet mid-answer, longer than any idle timeout under test
            await response.write(b"data: " + json.dumps(event).encode() + b"\n\n")
    except (asyncio.CancelledError, ConnectionResetError):
        state.notes.append("stream-cancelled")  # the gateway hung up on us
        raise
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response
