"""`prompt {id, version}` on the router, the way applications send it: through `orq-ai-sdk` (`orq.prompt`), the
`openai` SDK (`extra_body`) and raw JSON, against the mock upstream, asserting what the upstream received: the
prompt's messages first, the request's after, the request's parameters over the prompt's, variables rendered."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from orq_ai_sdk import Orq

from tests.conftest import KEY, Stack
from tests.http.test_admin_api import as_admin, error_of

ROUTER = "/v2/router/chat/completions"
SYSTEM = {"role": "system", "content": "You help {{customer}} with {{product}}, in a {{tone}} tone."}


@pytest.fixture
def client(stack: Stack) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=stack.gateway.url + "/v2/router", api_key=KEY, max_retries=0) as sdk:
        yield sdk


def store(stack: Stack, **content: Any) -> str:
    prompt_id = f"p-{secrets.token_hex(6)}"
    body = {
        "id": prompt_id,
        "messages": [SYSTEM],
        "model": "openai/gpt-4o",
        "parameters": {"temperature": 0.2, "max_tokens": 64, "seed": 7},
        "variables": {"product": "Portico", "tone": "formal"},
        **content,
    }
    response = as_admin(stack, "POST", "/v1/admin/prompts", body)
    assert response.status == 201, response.body
    return prompt_id


def update(stack: Stack, prompt_id: str, **content: Any) -> int:
    response = as_admin(stack, "PUT", f"/v1/admin/prompts/{prompt_id}", {"messages": [SYSTEM], **content})
    assert response.status == 200, response.body
    version: int = response.json()["version"]
    return version


def sent_upstream(stack: Stack) -> dict[str, Any]:
    assert len(stack.upstream.requests) == 1, stack.upstream.requests
    body: dict[str, Any] = stack.upstream.requests[0]["body"]
    return body


def test_the_openai_sdk_merges_the_latest_prompt_with_the_request(stack: Stack, client: openai.OpenAI) -> None:
    prompt_id = store(stack)
    reply = client.chat.completions.create(
        model="openai/gpt-4o-mini",
        messages=[{"role": "user", "content": "Where is my {{thing}}?"}],
        temperature=0.9,
        extra_body={"prompt": {"id": prompt_id, "version": "latest"}, "variables": {"customer": "Ada", "thing": "key"}},
    )
    assert reply.choices[0].message.content == "Echo from gpt-4o-mini: Where is my key?"
    body = sent_upstream(stack)
    assert body["messages"] == [
        {"role": "system", "content": "You help Ada with Portico, in a formal tone."},
        {"role": "user", "content": "Where is my key?"},
    ]
    assert body["model"] == "gpt-4o-mini", "the request's model wins"
    assert body["temperature"] == 0.9 and body["max_tokens"] == 64 and body["seed"] == 7
    for gateway_field in ("prompt", "variables", "template_engine"):
        assert gateway_field not in body


def test_a_pinned_version_serves_that_version(stack: Stack, client: openai.OpenAI) -> None:
    prompt_id = store(stack)
    assert update(stack, prompt_id, parameters={"temperature": 0.5}, variables={"tone": "casual"}) == 2
    for version, tone, temperature in ((1, "formal", 0.2), (2, "casual", 0.5), ("latest", "casual", 0.5)):
        stack.upstream.reset()
        client.chat.completions.create(
            model="openai/gpt-4o",
            messages=[{"role": "user", "content": "hi"}],
            extra_body={"prompt": {"id": prompt_id, "version": version}, "variables": {"customer": "Bo"}},
        )
        body = sent_upstream(stack)
        product = "Portico" if version == 1 else "{{product}}"  # version 2 dropped that default
        assert body["messages"][0]["content"] == f"You help Bo with {product}, in a {tone} tone."
        assert body["temperature"] == temperature
        assert ("max_tokens" in body) is (version == 1)


def test_orq_sdk_loads_the_prompt_through_the_orq_object(stack: Stack) -> None:
    prompt_id = store(stack)
    with Orq(api_key=KEY, server_url=stack.gateway.url) as orq:
        reply = orq.router.chat.completions.create(
            model="openai/gpt-4o",
            messages=[{"role": "user", "content": "Hello, I am {{customer}}."}],
            variables={"customer": "Grace", "tone": "warm"},
            orq={"prompt": {"id": prompt_id, "version": "latest"}},
        )
    assert reply.choices[0].message.content == "Echo from gpt-4o: Hello, I am Grace."
    body = sent_upstream(stack)
    assert [m["content"] for m in body["messages"]] == [
        "You help Grace with Portico, in a warm tone.",
        "Hello, I am Grace.",
    ]
    assert body["temperature"] == 0.2 and "orq" not in body


def test_a_prompt_alone_needs_no_request_messages_and_leaves_unknown_variables_verbatim(stack: Stack) -> None:
    prompt_id = store(stack)
    response = stack.post(
        ROUTER, {"model": "openai/gpt-4o", "messages": [], "prompt": {"id": prompt_id, "version": "latest"}}
    )
    assert response.status == 200, response.body
    assert sent_upstream(stack)["messages"] == [
        {"role": "system", "content": "You help {{customer}} with Portico, in a formal tone."}
    ]


def test_top_level_prompt_wins_over_orq_prompt(stack: Stack) -> None:
    top, deprecated = store(stack, messages=[{"role": "system", "content": "top"}]), store(stack)
    body = {
        "model": "openai/gpt-4o",
        "messages": [{"role": "user", "content": "hi"}],
        "prompt": {"id": top, "version": "latest"},
        "orq": {"prompt": {"id": deprecated, "version": "latest"}},
    }
    assert stack.post(ROUTER, body).status == 200
    assert sent_upstream(stack)["messages"][0] == {"role": "system", "content": "top"}


def test_an_unknown_prompt_or_version_is_404_naming_it(stack: Stack) -> None:
    hi = [{"role": "user", "content": "hi"}]
    missing = stack.post(
        ROUTER, {"model": "openai/gpt-4o", "messages": hi, "prompt": {"id": "nope-1", "version": "latest"}}
    )
    error = error_of(missing, 404, "prompt_not_found")["error"]
    assert "'nope-1'" in error["message"] and error["param"] == "prompt.id"
    prompt_id = store(stack)
    version = stack.post(
        ROUTER, {"model": "openai/gpt-4o", "messages": hi, "orq": {"prompt": {"id": prompt_id, "version": 9}}}
    )
    assert "Version 9" in error_of(version, 404, "prompt_not_found")["error"]["message"]
    bad = stack.post(ROUTER, {"model": "openai/gpt-4o", "messages": hi, "prompt": {"id": prompt_id, "version": 0}})
    assert error_of(bad, 422)["detail"][0]["loc"][:3] == ["body", "prompt", "version"]
    assert stack.upstream.requests == []


def test_prompt_tools_and_response_format_apply_unless_the_request_sets_them(stack: Stack) -> None:
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    schema = {"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}}}
    prompt_id = store(stack, tools=[tool], response_format=schema, parameters={"tool_choice": "auto"})
    ref = {"id": prompt_id, "version": "latest"}
    hi = [{"role": "user", "content": "hi"}]
    reply = stack.post(ROUTER, {"model": "openai/gpt-4o", "messages": hi, "prompt": ref}).json()
    assert reply["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "lookup"
    body = sent_upstream(stack)
    assert body["tools"] == [tool] and body["response_format"] == schema and body["tool_choice"] == "auto"
    stack.upstream.reset()
    own = {"model": "openai/gpt-4o", "messages": hi, "prompt": ref, "response_format": {"type": "json_object"}}
    assert stack.post(ROUTER, own).status == 200
    assert sent_upstream(stack)["response_format"] == {"type": "json_object"}


def test_a_jinja_prompt_renders_its_logic_with_defaults_and_request_variables(stack: Stack) -> None:
    template = "{% if vip %}VIP {% endif %}Hello {{ name | upper }}{% for i in range(count) %}!{% endfor %}"
    prompt_id = store(
        stack,
        messages=[{"role": "system", "content": template}],
        template_engine="jinja",
        variables={"name": "guest", "count": 1},
    )
    ref = {"id": prompt_id, "version": "latest"}
    hi = [{"role": "user", "content": "{{ name }} here"}]
    assert stack.post(ROUTER, {"model": "openai/gpt-4o", "messages": hi, "prompt": ref}).status == 200
    assert [m["content"] for m in sent_upstream(stack)["messages"]] == ["Hello GUEST!", "guest here"]
    stack.upstream.reset()
    asked = {
        "model": "openai/gpt-4o",
        "messages": hi,
        "prompt": ref,
        "variables": {"vip": True, "name": "ada", "count": 3},
    }
    assert stack.post(ROUTER, asked).status == 200
    assert sent_upstream(stack)["messages"][0]["content"] == "VIP Hello ADA!!!"
    stack.upstream.reset()
    text = {**asked, "template_engine": "text"}  # the request's engine wins over the prompt's
    assert stack.post(ROUTER, text).status == 200
    assert sent_upstream(stack)["messages"][0]["content"] == template


def test_a_jinja_prompt_cannot_reach_python_internals(stack: Stack) -> None:
    template = "{{ name.__class__.__mro__ }}"
    prompt_id = store(stack, messages=[{"role": "system", "content": template}], template_engine="jinja")
    body = {"model": "openai/gpt-4o", "messages": [], "prompt": {"id": prompt_id, "version": "latest"}}
    refused = error_of(stack.post(ROUTER, {**body, "variables": {"name": "x"}}), 422, "validation_error")
    assert refused["detail"][0]["loc"] == ["body", "messages", 0, "content"]
    assert stack.upstream.requests == []


def test_a_variable_value_is_rendered_once(stack: Stack) -> None:
    prompt_id = store(stack, messages=[{"role": "system", "content": "Hi {{customer}}"}])
    body = {
        "model": "openai/gpt-4o",
        "messages": [{"role": "user", "content": "x"}],
        "prompt": {"id": prompt_id, "version": "latest"},
        "variables": {"customer": "{{tone}}"},
    }
    assert stack.post(ROUTER, body).status == 200
    assert sent_upstream(stack)["messages"][0]["content"] == "Hi {{tone}}"


def test_a_streamed_request_uses_the_prompt_too(stack: Stack, client: openai.OpenAI) -> None:
    prompt_id = store(stack)
    stream = client.chat.completions.create(
        model="openai/gpt-4o",
        messages=[{"role": "user", "content": "stream please"}],
        stream=True,
        extra_body={"prompt": {"id": prompt_id, "version": "latest"}, "variables": {"customer": "Lin"}},
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == "Echo from gpt-4o: stream please"
    body = sent_upstream(stack)
    assert body["messages"][0]["content"] == "You help Lin with Portico, in a formal tone." and body["stream"] is True


def test_an_update_is_served_at_once_and_a_deleted_prompt_is_404(stack: Stack) -> None:
    prompt_id = store(stack)
    ref = {"model": "openai/gpt-4o", "messages": [], "prompt": {"id": prompt_id, "version": "latest"}}
    update(stack, prompt_id, messages=[{"role": "system", "content": "v2"}])
    assert stack.post(ROUTER, ref).status == 200
    assert sent_upstream(stack)["messages"] == [{"role": "system", "content": "v2"}]
    assert as_admin(stack, "DELETE", f"/v1/admin/prompts/{prompt_id}").status == 204
    error_of(stack.post(ROUTER, ref), 404, "prompt_not_found")


def test_the_openai_path_takes_a_prompt_too(stack: Stack) -> None:
    prompt_id = store(stack)
    body = {
        "model": "openai/gpt-4o",
        "messages": [{"role": "user", "content": "hi"}],
        "prompt": {"id": prompt_id, "version": 1},
        "variables": {"customer": "Kim"},
    }
    assert stack.post("/v1/chat/completions", body).status == 200
    assert sent_upstream(stack)["messages"][0]["content"] == "You help Kim with Portico, in a formal tone."


def test_an_empty_prompt_id_is_refused_not_ignored(stack: Stack) -> None:
    body = {
        "model": "openai/gpt-4o",
        "messages": [{"role": "user", "content": "hi"}],
        "prompt": {"id": "", "version": "latest"},
    }
    assert error_of(stack.post(ROUTER, body), 422)["detail"][0]["loc"][:3] == ["body", "prompt", "id"]
    assert stack.upstream.requests == []
