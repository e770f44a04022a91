"""The stored-prompt admin API over HTTP, as an operator meets it: create, read, list, update (a new version only
when the content changes), versions, delete; every invalid body a 422 naming its path, and never stored."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from tests.conftest import Response, Stack
from tests.http.test_admin_api import as_admin, call, error_of
from tests.spec_schemas import validate_vllm_422

BASE = "/v1/admin/prompts"


def new_id() -> str:
    return f"p-{secrets.token_hex(6)}"


def prompt_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "messages": [{"role": "system", "content": "You help {{customer}} with {{product}}."}],
        "model": "openai/gpt-4o-mini",
        "parameters": {"temperature": 0.2, "max_tokens": 64},
        "variables": {"product": "Portico"},
        "description": "support persona",
        "tags": ["support"],
    }
    return {**body, **overrides}


def create(stack: Stack, prompt_id: str, **overrides: Any) -> dict[str, Any]:
    response = as_admin(stack, "POST", BASE, {"id": prompt_id, **prompt_body(**overrides)})
    assert response.status == 201, response.body
    created: dict[str, Any] = response.json()
    return created


def test_a_prompt_is_created_read_listed_and_deleted(stack: Stack) -> None:
    prompt_id = new_id()
    created = create(stack, prompt_id)
    assert created["id"] == prompt_id and created["version"] == 1
    assert created["messages"] == prompt_body()["messages"] and created["parameters"]["temperature"] == 0.2
    assert created["template_engine"] == "text" and created["tags"] == ["support"]
    assert created["created_at"].endswith("+00:00") and len(created["content_hash"]) == 64
    read = as_admin(stack, "GET", f"{BASE}/{prompt_id}")
    assert read.status == 200 and read.json() == created
    listed = as_admin(stack, "GET", BASE).json()["data"]
    assert created in listed
    deleted = as_admin(stack, "DELETE", f"{BASE}/{prompt_id}")
    assert deleted.status == 204 and deleted.body == b""
    error_of(as_admin(stack, "GET", f"{BASE}/{prompt_id}"), 404, "prompt_not_found")
    error_of(as_admin(stack, "GET", f"{BASE}/{prompt_id}/versions"), 404, "prompt_not_found")
    error_of(as_admin(stack, "DELETE", f"{BASE}/{prompt_id}"), 404, "prompt_not_found")
    assert all(p["id"] != prompt_id for p in as_admin(stack, "GET", BASE).json()["data"])


def test_an_id_is_generated_when_none_is_given(stack: Stack) -> None:
    response = as_admin(stack, "POST", BASE, prompt_body())
    assert response.status == 201, response.body
    prompt_id = response.json()["id"]
    assert prompt_id.startswith("prompt_") and as_admin(stack, "GET", f"{BASE}/{prompt_id}").status == 200


def test_every_change_is_a_new_version_and_an_unchanged_update_is_not(stack: Stack) -> None:
    prompt_id = new_id()
    first = create(stack, prompt_id)
    changed = as_admin(stack, "PUT", f"{BASE}/{prompt_id}", prompt_body(parameters={"temperature": 0.7}))
    assert changed.status == 200 and changed.json()["version"] == 2, changed.body
    assert changed.headers["x-portico-prompt-changed"] == "true"
    same = as_admin(stack, "PUT", f"{BASE}/{prompt_id}", prompt_body(parameters={"temperature": 0.7}))
    assert same.status == 200 and same.json()["version"] == 2
    assert same.headers["x-portico-prompt-changed"] == "false"
    versions = as_admin(stack, "GET", f"{BASE}/{prompt_id}/versions").json()["data"]
    assert [v["version"] for v in versions] == [1, 2]
    assert versions[0] == first, "a version never changes"
    one = as_admin(stack, "GET", f"{BASE}/{prompt_id}/versions/1").json()
    assert one["parameters"] == {"temperature": 0.2, "max_tokens": 64}
    assert as_admin(stack, "GET", f"{BASE}/{prompt_id}").json()["parameters"] == {"temperature": 0.7}
    missing = error_of(as_admin(stack, "GET", f"{BASE}/{prompt_id}/versions/3"), 404, "prompt_not_found")
    assert "Version 3" in missing["error"]["message"] and prompt_id in missing["error"]["message"]


def test_an_existing_id_is_409_and_an_update_of_an_unknown_id_is_404(stack: Stack) -> None:
    prompt_id = new_id()
    create(stack, prompt_id)
    again = as_admin(stack, "POST", BASE, {"id": prompt_id, **prompt_body(description="other")})
    assert error_of(again, 409, "prompt_exists")["error"]["param"] == "id"
    assert as_admin(stack, "GET", f"{BASE}/{prompt_id}").json()["description"] == "support persona"
    unknown = error_of(as_admin(stack, "PUT", f"{BASE}/{new_id()}", prompt_body()), 404, "prompt_not_found")
    assert "not found" in unknown["error"]["message"]


INVALID: list[tuple[dict[str, Any], list[str | int]]] = [
    ({"messages": []}, ["body", "messages"]),
    ({"messages": [{"role": "wizard", "content": "x"}]}, ["body", "messages", 0]),
    ({"messages": [{"role": "user"}]}, ["body", "messages", 0, "content"]),
    ({"parameters": {"temperature": 5}}, ["body", "parameters", "temperature"]),
    ({"parameters": {"max_tokens": "many"}}, ["body", "parameters", "max_tokens"]),
    ({"parameters": {"retry": {"count": 2}}}, ["body", "parameters", "retry"]),
    ({"parameters": {"messages": []}}, ["body", "parameters", "messages"]),
    ({"tools": [{"type": "function"}]}, ["body", "tools", 0, "function"]),
    ({"response_format": {"type": "xml"}}, ["body", "response_format"]),
    ({"template_engine": "handlebars"}, ["body", "template_engine"]),
    (
        {"template_engine": "jinja", "messages": [{"role": "user", "content": "{% if %}"}]},
        ["body", "messages", 0, "content"],
    ),
    ({"temprature": 0.5}, ["body", "temprature"]),
    ({"id": "has space"}, ["body", "id"]),
    ({"variables": ["a"]}, ["body", "variables"]),
]


@pytest.mark.parametrize(("change", "loc"), INVALID, ids=[str(loc[1:]) for _, loc in INVALID])
def test_an_invalid_body_is_422_naming_the_path_and_is_never_stored(
    stack: Stack, change: dict[str, Any], loc: list[str | int]
) -> None:
    prompt_id = new_id()
    body = {"id": prompt_id, **prompt_body(), **change}
    refused = error_of(as_admin(stack, "POST", BASE, body), 422, "validation_error")
    validate_vllm_422(refused)
    assert refused["detail"][0]["loc"][: len(loc)] == loc, refused["detail"]
    if "id" in change:
        assert all(p["id"] != change["id"] for p in as_admin(stack, "GET", BASE).json()["data"])
    else:
        error_of(as_admin(stack, "GET", f"{BASE}/{prompt_id}"), 404, "prompt_not_found")
    create(stack, prompt_id)
    update = {k: v for k, v in body.items() if k != "id"}
    if "id" not in change:
        error_of(as_admin(stack, "PUT", f"{BASE}/{prompt_id}", update), 422, "validation_error")
        assert as_admin(stack, "GET", f"{BASE}/{prompt_id}").json()["version"] == 1


def test_a_bad_id_in_the_path_and_a_bad_version_are_422(stack: Stack) -> None:
    error_of(as_admin(stack, "GET", f"{BASE}/{new_id()}/versions/0"), 422, "validation_error")
    error_of(as_admin(stack, "GET", f"{BASE}/{new_id()}/versions/latest"), 422, "validation_error")


def test_the_api_needs_the_gateway_key(stack: Stack) -> None:
    missing: Response = call(stack, "POST", BASE, {"id": new_id(), **prompt_body()})
    error_of(missing, 401, "invalid_api_key")


def test_docs_describe_the_prompt_routes_and_schemas(stack: Stack) -> None:
    spec = stack.get("/openapi.json", key=None).json()
    paths = spec["paths"]
    assert set(paths[BASE]) == {"get", "post"}
    assert set(paths[BASE + "/{prompt_id}"]) == {"get", "put", "delete"}
    assert BASE + "/{prompt_id}/versions/{version}" in paths
    schemas = spec["components"]["schemas"]
    assert {"PromptCreate", "PromptUpdate", "PromptPublic", "PromptList"} <= set(schemas)
    created = paths[BASE]["post"]["responses"]
    assert created["201"]["content"]["application/json"]["schema"]["$ref"].endswith("/PromptPublic")
    assert {"401", "409", "422"} <= set(created)
