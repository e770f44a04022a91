"""PII redaction in tool calls, through the `openai` SDK: the arguments of earlier tool calls and the tool results
reach the model as placeholders, and the model's own tool call gets the originals back in its arguments (JSON and
streamed, where the upstream splits the arguments into 4-character pieces, so placeholders arrive split)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from aiohttp import web

from tests.conftest import KEY, stack_settings
from tests.gateway_server import GatewayThread
from tests.upstreams.server import UpstreamState, UpstreamThread, last_user_text

EMAIL, IBAN, PHONE = "anna.smit@example.nl", "NL91ABNA0417164300", "+31 20 794 0911"


def _install_tool_caller(app: web.Application, state: UpstreamState) -> None:
    """Answers every request with one `send_email` tool call whose arguments quote the last user message."""

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        state.requests.append({"body": body})
        arguments = json.dumps({"to": last_user_text(body["messages"]), "cc": ["x@y"]})
        call = {"id": "call_1", "type": "function", "function": {"name": "send_email", "arguments": arguments}}
        base = {"id": "c1", "created": 1, "model": body["model"]}
        if not body.get("stream"):
            message = {"role": "assistant", "content": None, "tool_calls": [call]}
            choice = {"index": 0, "message": message, "finish_reason": "tool_calls"}
            return web.json_response({**base, "object": "chat.completion", "choices": [choice]})
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        base = {**base, "object": "chat.completion.chunk"}
        head = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "send_email", "arguments": ""}}
        deltas = [{"role": "assistant", "tool_calls": [head]}]
        deltas += [{"tool_calls": [{"index": 0, "function": {"arguments": arguments[i : i + 4]}}]}
                   for i in range(0, len(arguments), 4)]  # fmt: skip
        for delta in deltas:
            chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
            await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        done = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}
        await response.write(b"data: " + json.dumps(done).encode() + b"\n\ndata: [DONE]\n\n")
        return response

    app.router.add_post("/v1/chat/completions", chat)


@pytest.fixture(scope="module")
def tool_stack() -> Iterator[tuple[GatewayThread, UpstreamThread]]:
    with UpstreamThread([_install_tool_caller]) as up, GatewayThread(stack_settings(up.url)) as gateway:
        yield gateway, up


LOOKUP = {"id": "call_0", "type": "function", "function": {"name": "lookup", "arguments": json.dumps({"iban": IBAN})}}
MESSAGES: list[Any] = [
    {"role": "user", "content": "Look up the account"},
    {"role": "assistant", "content": None, "tool_calls": [LOOKUP]},
    {"role": "tool", "tool_call_id": "call_0", "content": f"owner phone: {PHONE}"},
    {"role": "user", "content": f"Mail the owner at {EMAIL}"},
]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_tool_call_arguments_and_results_are_redacted_and_restored(
    tool_stack: tuple[GatewayThread, UpstreamThread], stream: bool
) -> None:
    gateway, up = tool_stack
    up.state.requests.clear()
    client = openai.OpenAI(api_key=KEY, base_url=gateway.url + "/v2/router", max_retries=0)
    extra = {"guardrails": [{"id": "portico_pii_redaction", "execute_on": "input"}]}
    asked: Any = client.chat.completions.create(
        model="openai/gpt-4o", messages=MESSAGES, stream=stream, extra_body=extra
    )
    if stream:
        pieces = [c.choices[0].delta.tool_calls for c in asked if c.choices and c.choices[0].delta.tool_calls]
        arguments = "".join(call.function.arguments or "" for calls in pieces for call in calls)
    else:
        arguments = asked.choices[0].message.tool_calls[0].function.arguments
    sent = up.state.requests[-1]["body"]["messages"]
    assert json.loads(sent[1]["tool_calls"][0]["function"]["arguments"]) == {"iban": "[IBAN_1]"}
    assert sent[2]["content"] == "owner phone: [PHONE_1]"
    assert sent[3]["content"] == "Mail the owner at [EMAIL_1]"
    assert not [v for v in (EMAIL, IBAN, PHONE) if v in json.dumps(sent)], "the model never sees a value"
    assert json.loads(arguments) == {"to": f"Mail the owner at {EMAIL}", "cc": ["x@y"]}
