"""The `mustache` template engine as clients meet it: `template_engine: mustache` on the router (through the
`openai` SDK), a stored mustache prompt, a deployment whose variant renders with it, and the 422s a bad template
gets, at request time and at write time. What the upstream receives is what is checked."""

from __future__ import annotations

from typing import Any

import openai

from tests.conftest import KEY, Stack
from tests.deployments.conftest import create, new_key, simple
from tests.http.test_admin_api import as_admin
from tests.prompts.test_router_e2e import ROUTER, sent_upstream, store

SECTIONS = (
    "Dear {{customer.name}},{{#orders}} #{{id}}: {{item}}{{/orders}}{{^orders}} no orders{{/orders}}."
    "{{! a comment }} Notes: {{notes}} & {{{notes}}}"
)
VALUES: dict[str, Any] = {
    "customer": {"name": "Ann <Lee>"},
    "orders": [{"id": 1, "item": "tea & cake"}, {"id": 2, "item": "scones"}],
    "notes": "5 < 6 & 'quoted'",
}
RENDERED = "Dear Ann <Lee>, #1: tea & cake #2: scones. Notes: 5 < 6 & 'quoted' & 5 < 6 & 'quoted'"


def test_the_openai_sdk_renders_sections_without_html_escaping(stack: Stack) -> None:
    client = openai.OpenAI(base_url=stack.gateway.url + "/v2/router", api_key=KEY, max_retries=0)
    client.chat.completions.create(
        model="openai/gpt-4o",
        messages=[{"role": "user", "content": SECTIONS}],
        extra_body={"variables": VALUES, "template_engine": "mustache"},
    )
    assert sent_upstream(stack)["messages"][0]["content"] == RENDERED
    stack.upstream.reset()
    client.chat.completions.create(
        model="openai/gpt-4o",
        messages=[{"role": "user", "content": SECTIONS + " {{missing}}|{{> partial}}|"}],
        extra_body={"variables": {"customer": {"name": "Bo"}}, "template_engine": "mustache"},
    )
    assert sent_upstream(stack)["messages"][0]["content"] == "Dear Bo, no orders. Notes:  &  ||"  # missing: empty


def test_a_bad_template_is_422_naming_the_message_and_calls_no_upstream(stack: Stack) -> None:
    body = {
        "model": "openai/gpt-4o",
        "messages": [{"role": "system", "content": "ok"}, {"role": "user", "content": "{{#open}}x{{/other}}"}],
        "variables": {"open": True},
        "template_engine": "mustache",
    }
    answer = stack.post(ROUTER, body)
    assert answer.status == 422, answer.body
    detail = answer.json()["detail"][0]
    assert detail["loc"] == ["body", "messages", 1, "content"] and detail["type"] == "template_error"
    assert "Mustache" in detail["msg"] and "{{/other}}" in detail["msg"]
    assert stack.upstream.requests == []


def test_a_stored_mustache_prompt_renders_with_defaults_and_a_bad_one_is_never_stored(stack: Stack) -> None:
    prompt_id = store(
        stack, messages=[{"role": "system", "content": SECTIONS}], template_engine="mustache", variables=VALUES
    )
    body = {
        "model": "openai/gpt-4o",
        "messages": [{"role": "user", "content": "hi"}],
        "prompt": {"id": prompt_id, "version": "latest"},
    }
    assert stack.post(ROUTER, body).status == 200
    assert sent_upstream(stack)["messages"][0]["content"] == RENDERED
    bad = {"messages": [{"role": "system", "content": "{{#a}}"}, {"role": "user", "content": "{{/b}}"}]}
    answer = as_admin(stack, "POST", "/v1/admin/prompts", {**bad, "template_engine": "mustache"})
    assert answer.status == 422, answer.body
    assert answer.json()["detail"][0]["loc"] == ["body", "messages", 1, "content"]
    assert as_admin(stack, "POST", "/v1/admin/prompts", {**bad, "template_engine": "text"}).status == 201  # no tags


def test_a_deployment_renders_its_mustache_variant_and_a_missing_input_is_empty(stack: Stack) -> None:
    key = new_key()
    prompt = {"messages": [{"role": "system", "content": "Help {{user}}{{#vip}} (VIP){{/vip}} with {{topic}}."}]}
    create(stack, simple(key, prompt=prompt, template_engine="mustache", inputs={"topic": "billing"}))
    answer = stack.post("/v2/deployments/invoke", {"key": key, "inputs": {"user": "Ann", "vip": True}})
    assert answer.status == 200, answer.body
    assert sent_upstream(stack)["messages"][0]["content"] == "Help Ann (VIP) with billing."
    stack.upstream.reset()
    answer = stack.post("/v2/deployments/invoke", {"key": key})  # no `user`: mustache renders it empty, no 422
    assert answer.status == 200, answer.body
    assert sent_upstream(stack)["messages"][0]["content"] == "Help  with billing."
