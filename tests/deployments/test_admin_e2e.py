"""The deployments admin API over HTTP: create (both forms), read, list, update, versions, roll back, delete, and
every invalid body refused with 422 naming its path and never stored."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Stack
from tests.deployments.conftest import create, delete, new_key, put, simple

ADMIN = "/v1/admin/deployments"


def full(key: str) -> dict[str, Any]:
    return {
        "key": key,
        "description": "support bot",
        "variants": [
            {"name": "standard", "model": "openai/gpt-4o", "prompt": {"messages": [{"role": "user", "content": "hi"}]}},
            {
                "name": "premium",
                "model": "openai/gpt-4o-premium",
                "prompt": {"messages": [{"role": "system", "content": "Premium."}]},
                "parameters": {"temperature": 0.7},
                "fallbacks": ["openai/gpt-4o"],
                "retry": {"count": 2, "on_codes": [429, 503]},
                "cache": {"ttl": 60},
                "timeout": {"call_timeout": 5000},
            },
        ],
        "routing": [{"when": {"tier": {"in": ["gold", "platinum"]}}, "variant": "premium"}],
        "default_variant": "standard",
    }


def test_the_simplest_create_works_and_reads_back(stack: Stack) -> None:
    key = new_key()
    created = create(stack, simple(key))
    assert created["key"] == key and created["version"] == 1
    assert created["default_variant"] == "default"
    [variant] = created["variants"]
    assert variant["model"] == "openai/gpt-4o" and variant["parameters"] == {"temperature": 0.2, "max_tokens": 50}
    read = stack.get(f"{ADMIN}/{key}")
    assert read.status == 200 and read.json() == created
    listed = stack.get(ADMIN).json()["data"]
    assert [d for d in listed if d["key"] == key] == [created]


def test_the_full_form_with_variants_and_routing_is_stored(stack: Stack) -> None:
    key = new_key()
    created = create(stack, full(key))
    assert [v["name"] for v in created["variants"]] == ["standard", "premium"]
    assert created["routing"] == [{"when": {"tier": {"in": ["gold", "platinum"]}}, "variant": "premium"}]
    premium = created["variants"][1]
    assert premium["fallbacks"] == ["openai/gpt-4o"] and premium["retry"] == {"count": 2, "on_codes": [429, 503]}


def test_a_taken_key_is_409(stack: Stack) -> None:
    key = new_key()
    create(stack, simple(key))
    again = stack.post(ADMIN, simple(key))
    assert again.status == 409 and again.json()["error"]["code"] == "deployment_exists"


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"prompt": None}, "body.prompt"),
        ({"model": None}, "body.model"),
        ({"prompt": {"messages": [{"role": "robot", "content": "x"}]}}, "body.prompt.messages.0"),
        ({"parameters": {"temperature": 5}}, "body.parameters.temperature"),
        ({"parameters": {"model": "openai/other"}}, "body.parameters.model"),
        ({"prompt": {"id": "no-such-prompt"}}, "body.prompt.id"),
        ({"temprature": 0.1}, "body.temprature"),
        ({"key": "has spaces"}, "body.key"),
        ({"retry": {"count": 9}}, "body.retry.count"),
        ({"routing": [{"when": {"tier": "gold"}, "variant": "nope"}]}, "body.routing.0.variant"),
        ({"routing": [{"when": {"tier": {"gt": 3}}, "variant": "default"}]}, "body.routing.0.when.tier"),
        ({"routing": [{"when": {"tier": {"exists": "yes"}}, "variant": "default"}]}, "body.routing.0.when.tier.exists"),
        ({"default_variant": "other"}, "body.default_variant"),
    ],
)
def test_an_invalid_body_is_refused_naming_its_path_and_never_stored(
    stack: Stack, change: dict[str, Any], path: str
) -> None:
    key = new_key()
    body = {**simple(key), **change}
    body = {k: v for k, v in body.items() if v is not None}
    answer = stack.post(ADMIN, body)
    assert answer.status == 422, answer.body
    locs = [".".join(str(p) for p in d["loc"]) for d in answer.json()["detail"]]
    assert any(loc.startswith(path) for loc in locs), locs
    assert stack.get(f"{ADMIN}/{key}").status == 404
    assert not [d for d in stack.get(ADMIN).json()["data"] if d["key"] in (key, body["key"])]


def test_variants_and_top_level_variant_fields_do_not_mix(stack: Stack) -> None:
    body = {**full(new_key()), "model": "openai/gpt-4o"}
    answer = stack.post(ADMIN, body)
    assert answer.status == 422
    assert ["body", "model"] in [d["loc"] for d in answer.json()["detail"]]


def test_a_variant_message_broken_deep_inside_names_the_variant(stack: Stack) -> None:
    body = full(new_key())
    body["variants"][1]["prompt"]["messages"][0]["content"] = 42
    answer = stack.post(ADMIN, body)
    assert answer.status == 422
    locs = [d["loc"] for d in answer.json()["detail"]]
    assert any(loc[:5] == ["body", "variants", 1, "prompt", "messages"] for loc in locs), locs


def test_update_makes_a_version_and_the_same_body_makes_none(stack: Stack) -> None:
    key = new_key()
    create(stack, simple(key))
    changed = {k: v for k, v in simple(key, parameters={"temperature": 0.9}).items() if k != "key"}
    answer = put(stack, f"{ADMIN}/{key}", changed)
    assert answer.status == 200 and answer.json()["version"] == 2
    assert answer.headers["x-portico-deployment-changed"] == "true"
    same = put(stack, f"{ADMIN}/{key}", changed)
    assert same.json()["version"] == 2 and same.headers["x-portico-deployment-changed"] == "false"
    versions = stack.get(f"{ADMIN}/{key}/versions").json()["data"]
    assert [v["version"] for v in versions] == [2, 1]
    assert versions[1]["variants"][0]["parameters"]["temperature"] == 0.2
    assert stack.get(f"{ADMIN}/{key}/versions/1").json()["version"] == 1
    assert stack.get(f"{ADMIN}/{key}/versions/7").status == 404


def test_rollback_makes_the_old_version_current_as_a_new_one(stack: Stack) -> None:
    key = new_key()
    first = create(stack, simple(key))
    put(stack, f"{ADMIN}/{key}", {k: v for k, v in simple(key, model="openai/gpt-4o-mini").items() if k != "key"})
    rolled = stack.post(f"{ADMIN}/{key}/rollback", {"version": 1})
    assert rolled.status == 200, rolled.body
    assert rolled.json()["version"] == 3 and rolled.json()["variants"] == first["variants"]
    assert rolled.json()["id"] == first["id"]
    assert stack.get(f"{ADMIN}/{key}").json()["version"] == 3
    missing = stack.post(f"{ADMIN}/{key}/rollback", {"version": 9})
    assert missing.status == 404 and missing.json()["error"]["code"] == "deployment_version_not_found"


def test_delete_removes_every_version(stack: Stack) -> None:
    key = new_key()
    create(stack, simple(key))
    assert delete(stack, f"{ADMIN}/{key}").status == 204
    assert stack.get(f"{ADMIN}/{key}").status == 404
    assert stack.get(f"{ADMIN}/{key}/versions").status == 404
    assert delete(stack, f"{ADMIN}/{key}").status == 404


def test_the_admin_api_needs_the_gateway_key(stack: Stack) -> None:
    assert stack.post(ADMIN, simple(new_key()), key=None).status == 401
    assert stack.get(ADMIN, key="sk-wrong").status == 401


def test_a_variant_may_use_a_stored_prompt_by_id(stack: Stack) -> None:
    prompt_id = new_key("prompt")
    made = stack.post(
        "/v1/admin/prompts",
        {"id": prompt_id, "messages": [{"role": "system", "content": "Stored for {{who}}."}], "model": "openai/gpt-4o"},
    )
    assert made.status == 201, made.body
    key = new_key()
    created = create(stack, {"key": key, "prompt": {"id": prompt_id, "version": 1}, "inputs": {"who": "Ann"}})
    assert created["variants"][0]["prompt"] == {"id": prompt_id, "version": 1}
    config = stack.post("/v2/deployments/get_config", {"key": key})
    assert config.status == 200, config.body
    assert config.json()["messages"] == [{"role": "system", "content": "Stored for Ann."}]
    assert config.json()["model"] == "gpt-4o"
