"""The core gateway as a user meets it: over HTTP, with the real `openai` SDK, against a mock OpenAI upstream."""

from __future__ import annotations

import json
from typing import Any

import openai

from tests.conftest import KEY, Stack, stack_settings
from tests.gateway_server import GatewayThread
from tests.spec_schemas import validate_chunk, validate_completion
from tests.upstreams.server import UpstreamThread

MESSAGES: list[Any] = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi"}]


def test_sync_completion_through_every_chat_path(stack: Stack) -> None:
    for base in ("/v1", "/v2/router", "/v2/gateway"):
        client = openai.OpenAI(base_url=stack.gateway.url + base, api_key=KEY, max_retries=0)
        raw = client.chat.completions.with_raw_response.create(model="openai/gpt-4o", messages=MESSAGES)
        completion = raw.parse()
        validate_completion(completion.model_dump(exclude_unset=True))
        assert "Say hi" in (completion.choices[0].message.content or "")
        assert raw.headers["x-portico-provider"] == "openai"
        assert raw.headers["x-portico-model"] == "gpt-4o"
        assert float(raw.headers["x-portico-overhead-ms"]) >= 0
        assert raw.headers["x-request-id"]
    sent = stack.upstream.requests[-1]
    assert sent["body"]["model"] == "gpt-4o"  # the provider prefix is the gateway's business
    assert sent["headers"]["Authorization"] == "Bearer sk-upstream"


def test_cookies_an_upstream_sets_never_reach_another_request(upstream_thread: UpstreamThread) -> None:
    # by host name: aiohttp's default jar would refuse cookies from an IP address and hide the leak
    named = upstream_thread.url.replace("127.0.0.1", "localhost")
    upstream_thread.state.reset()
    with GatewayThread(stack_settings(named)) as gateway:
        client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=0)
        for _ in range(2):
            client.chat.completions.create(model="openai/gpt-4o", messages=[{"role": "user", "content": "hi"}])
    sent = {name.lower() for name in upstream_thread.state.requests[-1]["headers"]}
    assert len(upstream_thread.state.requests) == 2 and "cookie" not in sent


async def test_async_streaming_chunks_follow_the_spec(stack: Stack) -> None:
    client = openai.AsyncOpenAI(base_url=stack.gateway.url + "/v2/router", api_key=KEY, max_retries=0)
    stream = await client.chat.completions.create(
        model="openai/gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    for chunk in chunks:
        validate_chunk(chunk.model_dump(exclude_unset=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Say hi" in text
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0
    assert any(c.choices and c.choices[0].finish_reason == "stop" for c in chunks)
    await client.close()


async def test_stream_without_include_usage_hides_usage(stack: Stack) -> None:
    client = openai.AsyncOpenAI(base_url=stack.gateway.url + "/v2/router", api_key=KEY, max_retries=0)
    stream = await client.chat.completions.create(model="openai/gpt-4o", messages=MESSAGES, stream=True)
    chunks = [chunk async for chunk in stream]
    assert all(c.usage is None and c.choices for c in chunks)
    assert stack.upstream.requests[-1]["body"]["stream_options"] == {"include_usage": True}  # the gateway still counts
    await client.close()


def test_n_and_tools(stack: Stack) -> None:
    client = openai.OpenAI(base_url=stack.gateway.url + "/v1", api_key=KEY, max_retries=0)
    two = client.chat.completions.create(model="openai/gpt-4o", messages=MESSAGES, n=2)
    assert [c.index for c in two.choices] == [0, 1]
    tools: Any = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            },
        }
    ]
    called = client.chat.completions.create(model="openai/gpt-4o", messages=MESSAGES, tools=tools)
    call = called.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert called.choices[0].finish_reason == "tool_calls" and call.function.name == "get_weather"
    json.loads(call.function.arguments)
    streamed = client.chat.completions.create(model="openai/gpt-4o", messages=MESSAGES, tools=tools, stream=True)
    names = [
        tc.function.name for c in streamed for tc in (c.choices[0].delta.tool_calls or []) if c.choices and tc.function
    ]
    assert "get_weather" in names


def test_vllm_extra_parameters_arrive_unchanged(stack: Stack) -> None:
    extras = {
        "top_k": 20,
        "min_p": 0.05,
        "repetition_penalty": 1.15,
        "structured_outputs": {"choice": ["yes", "no"]},
        "chat_template_kwargs": {"enable_thinking": False},
        "stop_token_ids": [7, 8],
        "priority": 0,
    }
    client = openai.OpenAI(base_url=stack.gateway.url + "/v1", api_key=KEY, max_retries=0)
    client.chat.completions.create(model="vllm/meta-llama/Llama-3.1-8B-Instruct", messages=MESSAGES, extra_body=extras)
    body = stack.upstream.requests[-1]["body"]
    assert body["model"] == "meta-llama/Llama-3.1-8B-Instruct"
    for key, value in extras.items():
        assert body[key] == value
    sent = stack.upstream.requests[-1]["headers"]
    assert sent.get("Authorization") == "Bearer sk-vllm"


def test_trailing_slash_path_and_models_and_docs(stack: Stack) -> None:
    response = stack.post("/v1/chat/completions/", {"model": "openai/gpt-4o", "messages": MESSAGES})
    assert response.status == 200 and json.loads(response.body)["object"] == "chat.completion"
    models = stack.get("/v1/models")
    ids = {m["id"] for m in json.loads(models.body)["data"]}
    assert {"mock/echo", "vllm/meta-llama/Llama-3.1-8B-Instruct"} <= ids
    docs = stack.get("/docs")
    assert docs.status == 200 and b"swagger" in docs.body.lower()
    spec = json.loads(stack.get("/openapi.json").body)
    assert "/v2/router/chat/completions" in spec["paths"]
    assert "ChatCompletionRequest" in spec["components"]["schemas"]


def test_mock_provider_works_offline(stack: Stack) -> None:
    client = openai.OpenAI(base_url=stack.gateway.url + "/v1", api_key=KEY, max_retries=0)
    reply = client.chat.completions.create(model="mock/echo", messages=MESSAGES, n=2)
    assert reply.choices[0].message.content == "Mock reply to: Say hi"
    assert len(reply.choices) == 2
    words = [
        c.choices[0].delta.content
        for c in client.chat.completions.create(model="mock/echo", messages=MESSAGES, stream=True)
        if c.choices and c.choices[0].delta.content
    ]
    assert "".join(words) == "Mock reply to: Say hi"


def test_client_disconnect_cancels_the_upstream_request(stack: Stack) -> None:
    import http.client
    import time

    stack.upstream.set_mode("gpt-drip", "drip", 0.2)
    host, port = stack.gateway.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    body = json.dumps({"model": "openai/gpt-drip", "messages": MESSAGES, "stream": True})
    conn.request(
        "POST", "/v1/chat/completions", body, {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
    )
    response = conn.getresponse()
    assert response.status == 200
    assert response.read1(4096).startswith(b"data: ")  # the stream is flowing
    conn.sock.close()  # the client walks away mid-stream
    conn.close()
    deadline = time.monotonic() + 5
    while "stream-cancelled" not in stack.upstream.notes and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "stream-cancelled" in stack.upstream.notes
    assert stack.get("/health").status == 200
