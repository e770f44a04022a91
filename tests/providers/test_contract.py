"""Every provider adapter, end to end: the real `openai` SDK → Portico → a mock upstream speaking that provider's
wire format. One list of scenarios; each `cases_<provider>.py` module adds a provider to it."""

from __future__ import annotations

import importlib
import json
import pkgutil
from collections.abc import Iterator
from typing import Any

import openai
import pytest

import tests.providers as package
from tests.conftest import KEY
from tests.gateway_server import GatewayThread
from tests.providers.contract import ContractCase
from tests.upstreams.server import UpstreamState, UpstreamThread

CASES: list[ContractCase] = [
    importlib.import_module(f"tests.providers.{info.name}").CASE
    for info in pkgutil.iter_modules(package.__path__)
    if info.name.startswith("cases_")
]

TOOLS: Any = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]
PIXEL = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


class Harness:
    def __init__(self, case: ContractCase, upstream: UpstreamThread, gateway: GatewayThread) -> None:
        self.case, self.upstream, self.gateway = case, upstream, gateway
        self.client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=0)
        self.model = f"{case.name}/{case.model}"

    @property
    def state(self) -> UpstreamState:
        return self.upstream.state

    def last_body(self) -> Any:
        return self.state.requests[-1]["body"]


@pytest.fixture(scope="module", params=CASES, ids=[c.name for c in CASES])
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    case: ContractCase = request.param
    with UpstreamThread([case.install]) as upstream:
        settings = {
            "auth": {"keys": [KEY]},
            "providers": {case.name: case.provider_config(upstream.url)},
            "logging": {"request_log": False},
        }
        with GatewayThread(settings) as gateway:
            yield Harness(case, upstream, gateway)


@pytest.fixture
def h(harness: Harness) -> Iterator[Harness]:
    harness.state.reset()
    yield harness
    harness.state.reset()


def test_plain_text_and_usage(h: Harness) -> None:
    reply = h.client.chat.completions.create(model=h.model, messages=[{"role": "user", "content": "Hello there"}])
    assert reply.choices[0].message.content and "Hello there" in reply.choices[0].message.content
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None and reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens > 0
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    assert h.case.upstream_model(h.state.requests[-1], h.case.model) == h.case.model


def test_system_prompt_and_multi_turn(h: Harness) -> None:
    messages: Any = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "First question"},
        {"role": "assistant", "content": "First answer"},
        {"role": "user", "content": "Second question"},
    ]
    reply = h.client.chat.completions.create(model=h.model, messages=messages, max_tokens=50, temperature=0.2)
    assert "Second question" in (reply.choices[0].message.content or "")
    body = h.last_body()
    assert "You are terse." in h.case.inspect.system(body)
    assert h.case.inspect.roles(body) == ["user", "assistant", "user"]
    assert h.case.inspect.max_tokens(body) == 50


@pytest.mark.parametrize("stream", [False, True])
def test_tool_call_round_trip(h: Harness, stream: bool) -> None:
    messages: Any = [{"role": "user", "content": "Weather in Paris?"}]
    if stream:
        chunks = list(h.client.chat.completions.create(model=h.model, messages=messages, tools=TOOLS, stream=True))
        calls: dict[int, dict[str, str]] = {}
        finish = None
        for chunk in chunks:
            for choice in chunk.choices:
                finish = choice.finish_reason or finish
                for tc in choice.delta.tool_calls or []:
                    slot = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                    slot["id"] += tc.id or ""
                    if tc.function:
                        slot["name"] += tc.function.name or ""
                        slot["arguments"] += tc.function.arguments or ""
        assert finish == "tool_calls"
        call = calls[0]
    else:
        reply = h.client.chat.completions.create(model=h.model, messages=messages, tools=TOOLS)
        assert reply.choices[0].finish_reason == "tool_calls"
        tool_call = (reply.choices[0].message.tool_calls or [])[0]
        call = {"id": tool_call.id, "name": tool_call.function.name, "arguments": tool_call.function.arguments}  # type: ignore[union-attr]
    assert call["name"] == "get_weather" and call["id"]
    assert json.loads(call["arguments"]) == {"city": "Paris"}
    history: Any = [
        *messages,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": call["name"], "arguments": call["arguments"]},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call["id"], "content": "Sunny, 21C"},
    ]
    final = h.client.chat.completions.create(model=h.model, messages=history, tools=TOOLS)
    assert final.choices[0].message.content == "Tool result: Sunny, 21C"
    assert h.case.inspect.tool_results(h.last_body()) == ["Sunny, 21C"]


def test_streaming_text_and_usage(h: Harness) -> None:
    chunks = list(
        h.client.chat.completions.create(
            model=h.model,
            messages=[{"role": "user", "content": "Stream please"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Stream please" in text
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert any(c.choices and c.choices[0].finish_reason == "stop" for c in chunks)


def test_image_input(h: Harness) -> None:
    if not h.case.supports_images:
        pytest.skip(f"{h.case.name} takes no images")
    content: Any = [{"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": PIXEL}}]
    reply = h.client.chat.completions.create(model=h.model, messages=[{"role": "user", "content": content}])
    assert "What is this?" in (reply.choices[0].message.content or "")
    assert h.case.inspect.has_image(h.last_body())


def test_json_mode(h: Harness) -> None:
    if not h.case.supports_json_mode:
        pytest.skip(f"{h.case.name} has no JSON mode")
    h.client.chat.completions.create(
        model=h.model, messages=[{"role": "user", "content": "Answer in JSON"}], response_format={"type": "json_object"}
    )
    assert h.case.inspect.wants_json(h.last_body())


def test_reasoning_round_trip(h: Harness) -> None:
    if not h.case.supports_reasoning:
        pytest.skip(f"{h.case.name} has no reasoning controls")
    extra = {"thinking": {"type": "enabled", "budget_tokens": 1024}}
    reply = h.client.chat.completions.create(
        model=h.model, messages=[{"role": "user", "content": "Think first"}], max_tokens=2048, extra_body=extra
    )
    assert h.case.inspect.reasoning_requested(h.last_body())
    message = reply.choices[0].message.model_dump()
    assert message.get("reasoning") == "Let me think."
    history: Any = [{"role": "user", "content": "Think first"}, message, {"role": "user", "content": "And then?"}]
    h.client.chat.completions.create(model=h.model, messages=history, max_tokens=2048, extra_body=extra)
    assert h.case.inspect.reasoning_history(h.last_body())


@pytest.mark.parametrize(("upstream_status", "gateway_status"), [(401, None), (429, 429), (500, 502)])
def test_error_mapping(h: Harness, upstream_status: int, gateway_status: int | None) -> None:
    expected = gateway_status or h.case.status_on_upstream_401
    h.state.fail_with(upstream_status, message=f"scripted {upstream_status}", retry_after=7)
    with pytest.raises(openai.APIStatusError) as info:
        h.client.chat.completions.create(model=h.model, messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == expected
    assert f"scripted {upstream_status}" in str(info.value.body)
    if upstream_status == 429:
        assert info.value.response.headers.get("retry-after") == "7"


@pytest.mark.parametrize("mode", ["cut_after", "inband_error"])
def test_stream_failure_mid_way_is_an_error(h: Harness, mode: str) -> None:
    h.state.set_mode(h.case.model, mode, 3)
    with pytest.raises(openai.APIError):
        for _ in h.client.chat.completions.create(
            model=h.model, messages=[{"role": "user", "content": "a long answer please"}], stream=True
        ):
            pass
