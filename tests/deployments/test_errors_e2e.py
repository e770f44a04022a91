"""Every way a deployment call can be wrong answers a clear JSON error in the gateway's `/v2` shape (top-level
`code` and `message` too), before any upstream is called."""

from __future__ import annotations

from typing import Any

import pytest
from orq_ai_sdk import Orq, models

from tests.conftest import Stack
from tests.deployments.conftest import create, new_key, simple

PATHS = ["/v2/deployments/invoke", "/v2/deployments/stream", "/v2/deployments/get_config"]


def loc_of(body: dict[str, Any]) -> list[Any]:
    located: list[Any] = body["detail"][0]["loc"]
    return located


@pytest.mark.parametrize("path", PATHS)
def test_an_unknown_key_is_404_naming_it(stack: Stack, path: str) -> None:
    answer = stack.post(path, {"key": "no-such-deployment"})
    assert answer.status == 404 and answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert body["code"] == "404" and "no-such-deployment" in body["message"]
    assert body["error"]["code"] == "deployment_not_found"


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({}, ["body", "key"]),
        ({"key": 5}, ["body", "key"]),
        ({"key": "k", "inputs": "x"}, ["body", "inputs"]),
        ({"key": "k", "context": []}, ["body", "context"]),
        ({"key": "k", "messages": [{"role": "robot", "content": "x"}]}, ["body", "messages", 0]),
        ({"key": "k", "invoke_options": {"include_usage": "yes"}}, ["body", "invoke_options", "include_usage"]),
        ({"key": "k", "documents": [{"metadata": {}}]}, ["body", "documents", 0, "text"]),
        ({"key": "k", "thread": {"tags": []}}, ["body", "thread", "id"]),
    ],
)
def test_a_malformed_body_is_422_naming_the_field(stack: Stack, body: dict[str, Any], loc: list[Any]) -> None:
    answer = stack.post("/v2/deployments/invoke", body)
    assert answer.status == 422, answer.body
    assert loc_of(answer.json())[: len(loc)] == loc
    assert answer.json()["code"] == "422"
    assert stack.upstream.requests == []


def test_a_body_that_is_not_json_is_400(stack: Stack) -> None:
    answer = stack.post_raw("/v2/deployments/invoke", b"{not json")
    assert answer.status == 400 and answer.json()["error"]["code"] == "invalid_json"


@pytest.mark.parametrize("path", PATHS)
def test_no_client_key_is_401(stack: Stack, path: str) -> None:
    answer = stack.post(path, {"key": "anything"}, key=None)
    assert answer.status == 401 and answer.json()["code"] == "401"
    assert stack.post(path, {"key": "anything"}, key="sk-wrong").status == 401


def test_the_sdk_raises_on_401(stack: Stack) -> None:
    with Orq(api_key="sk-wrong", server_url=stack.gateway.url) as orq, pytest.raises(models.ErrorResponse):
        orq.deployments.invoke(key="anything")


def test_extra_params_cannot_set_what_the_deployment_decides(stack: Stack) -> None:
    key = new_key()
    create(stack, simple(key))
    for field in ("model", "messages", "fallbacks"):
        answer = stack.post("/v2/deployments/invoke", {"key": key, "extra_params": {field: "x"}})
        assert answer.status == 422 and loc_of(answer.json()) == ["body", "extra_params", field]
    answer = stack.post("/v2/deployments/invoke", {"key": key, "extra_params": {"temperature": 9}})
    assert answer.status == 422 and loc_of(answer.json()) == ["body", "extra_params", "temperature"]
    assert stack.upstream.requests == []


def test_a_stored_template_that_fails_to_render_is_422(stack: Stack) -> None:
    key = new_key()
    messages = [{"role": "system", "content": "{{ name.__class__.__mro__ }}"}]
    create(stack, {"key": key, "model": "openai/gpt-4o", "prompt": {"messages": messages}, "template_engine": "jinja"})
    answer = stack.post("/v2/deployments/invoke", {"key": key, "inputs": {"name": "x"}})
    assert answer.status == 422, answer.body
    assert "failed to render" in answer.json()["message"] and key in answer.json()["message"]
    assert stack.upstream.requests == []


def test_knowledge_is_never_silently_ignored(stack: Stack) -> None:
    key = new_key()
    create(stack, simple(key))
    answer = stack.post("/v2/deployments/invoke", {"key": key, "knowledge_filter": {"topic": {"eq": "x"}}})
    assert answer.status == 422 and loc_of(answer.json()) == ["body", "knowledge_filter"]
    with_kb = new_key()
    create(stack, simple(with_kb, knowledge_bases=["kb-docs"]))
    answer = stack.post("/v2/deployments/invoke", {"key": with_kb})
    assert answer.status == 404 and answer.json()["error"]["code"] == "knowledge_base_not_found"
    assert stack.upstream.requests == []


@pytest.mark.parametrize("path", ["/v2/deployments/invoke", "/v2/deployments/stream"])
def test_an_upstream_failure_is_a_json_error(stack: Stack, path: str) -> None:
    key = new_key()
    create(stack, simple(key, model="openai/broken"))
    stack.upstream.fail_with(400, "bad request upstream", model="broken")
    answer = stack.post(path, {"key": key})
    assert answer.status == 400, answer.body
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["code"] == "400"


def test_a_guardrail_slot_is_never_silently_ignored(stack: Stack) -> None:
    key = new_key()
    create(stack, simple(key, guardrails=[{"id": "no-such-guardrail", "execute_on": "input"}]))
    answer = stack.post("/v2/deployments/invoke", {"key": key})
    assert answer.status in (400, 404), answer.body
    assert "no-such-guardrail" in answer.json()["message"]
    assert stack.upstream.requests == []
