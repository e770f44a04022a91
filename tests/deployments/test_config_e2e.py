"""`POST /v2/deployments/get_config` and `GET /v2/deployments` through orq's SDK, and what the call log keeps of a
deployment call: its key, version and variant, under the telemetry ids the answer carried."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from orq_ai_sdk import Orq

from tests.conftest import KEY, Stack, stack_settings
from tests.deployments.conftest import create, new_key, simple
from tests.gateway_server import GatewayThread
from tests.upstreams.server import UpstreamThread


def test_get_config_renders_the_variant_and_calls_no_model(stack: Stack) -> None:
    key = new_key()
    variants = [
        {"name": "a", "model": "openai/gpt-4o", "prompt": {"messages": [{"role": "system", "content": "A {{x}}"}]}},
        {
            "name": "b",
            "model": "vllm/meta-llama/Llama-3.1-8B-Instruct",
            "prompt": {"messages": [{"role": "system", "content": "B {{x}}"}]},
            "parameters": {"top_p": 0.5},
        },
    ]
    create(stack, {"key": key, "variants": variants, "routing": [{"when": {"b": True}, "variant": "b"}]})
    with Orq(api_key=KEY, server_url=stack.gateway.url) as orq:
        config = orq.deployments.get_config(
            key=key, context={"b": True}, inputs={"x": "1"}, messages=[{"role": "user", "content": "q"}]
        )
    assert config.provider == "openailike" and config.model == "meta-llama/Llama-3.1-8B-Instruct"
    assert config.version == "1"
    assert [(m.role, m.content) for m in config.messages] == [("system", "B 1"), ("user", "q")]
    assert config.parameters.top_p == 0.5
    raw = stack.post("/v2/deployments/get_config", {"key": key, "inputs": {"x": "2"}}).json()
    assert raw["variant"] == "a" and raw["messages"] == [{"role": "system", "content": "A 2"}]
    assert stack.upstream.requests == []


def test_the_orq_listing_shows_current_versions_newest_first(stack: Stack) -> None:
    first, second = new_key(), new_key()
    create(stack, simple(first))
    create(stack, simple(second, description="second"))
    with Orq(api_key=KEY, server_url=stack.gateway.url) as orq:
        listed = orq.deployments.list(limit=50)
        keys = [d.key for d in listed.data]
        assert keys.index(second) < keys.index(first)
        item = next(d for d in listed.data if d.key == second)
        assert item.prompt_config.provider == "openai" and item.prompt_config.model == "gpt-4o"
        assert item.description == "second" and item.version == "1"
        page = orq.deployments.list(limit=1)
        assert len(page.data) == 1 and page.has_more
        after = orq.deployments.list(limit=1, starting_after=page.data[0].id)
        assert after.data[0].id != page.data[0].id
    assert stack.get("/v2/deployments", key=None).status == 401


@pytest.fixture(scope="module")
def logged(upstream_thread: UpstreamThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    url = f"sqlite:///{tmp_path_factory.mktemp('deployments') / 'portico.db'}"
    settings = stack_settings(upstream_thread.url, storage={"url": url}, logging={"request_log": True})
    with GatewayThread(settings) as gateway:
        yield Stack(gateway, upstream_thread)


def _record(stack: Stack, request_id: str, timeout: float = 5.0) -> dict[str, Any] | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = stack.get(f"/v1/logs/{request_id}")
        if answer.status == 200:
            found: dict[str, Any] = answer.json()
            return found
        time.sleep(0.02)
    return None


def test_the_call_log_names_the_deployment_and_mocks_leave_no_record(logged: Stack) -> None:
    logged.upstream.reset()
    key = new_key()
    create(logged, simple(key))
    served = logged.post("/v2/deployments/invoke", {"key": key, "metadata": {"team": "a"}, "file_ids": ["f1"]})
    assert served.status == 200, served.body
    record = _record(logged, served.headers["x-request-id"])
    assert record is not None
    metadata = record["metadata"]
    assert metadata["deployment_key"] == key and metadata["deployment_version"] == 1
    assert metadata["deployment_variant"] == "default" and metadata["team"] == "a" and metadata["file_ids"] == ["f1"]
    assert record["trace_id"] == served.json()["telemetry"]["trace_id"]
    assert record["span_id"] == served.json()["telemetry"]["span_id"]
    mocked = logged.post("/v2/deployments/invoke", {"key": key, "invoke_options": {"mock_response": "x"}})
    assert mocked.status == 200
    assert _record(logged, mocked.headers["x-request-id"], timeout=0.5) is None


def test_docs_list_every_deployment_route(stack: Stack) -> None:
    document = stack.get("/openapi.json").json()
    paths = set(document["paths"])
    for path in ("/v2/deployments/invoke", "/v2/deployments/stream", "/v2/deployments/get_config", "/v2/deployments"):
        assert path in paths, path
    assert {"/v1/admin/deployments", "/v1/admin/deployments/{key}/rollback"} <= paths
    assert {"DeploymentInvoke", "DeploymentCreate", "DeploymentPublic"} <= set(document["components"]["schemas"])


def test_identity_contact_and_thread_of_an_invocation_reach_the_call_log(logged: Stack) -> None:
    key = new_key()
    create(logged, simple(key))
    identity = {"id": f"id-{key}", "display_name": "Ada", "email": "ada@example.com", "tags": ["vip"]}
    thread = {"id": f"thread-{key}", "tags": ["billing"]}
    served = logged.post("/v2/deployments/invoke", {"key": key, "identity": identity, "thread": thread})
    assert served.status == 200, served.body
    record = _record(logged, served.headers["x-request-id"])
    assert record is not None
    assert record["identity_id"] == identity["id"] and record["thread_id"] == thread["id"]
    streamed = logged.post(
        "/v2/deployments/stream", {"key": key, "contact": {"id": f"contact-{key}"}, "thread": thread}
    )
    assert streamed.status == 200, streamed.body
    record = _record(logged, streamed.headers["x-request-id"])
    assert record is not None and record["identity_id"] == f"contact-{key}" and record["thread_id"] == thread["id"]
    deadline = time.monotonic() + 5
    while (profile := logged.get(f"/v1/identities/{identity['id']}")).status != 200:  # written off the request path
        assert time.monotonic() < deadline, profile.body
        time.sleep(0.02)
    assert profile.json()["display_name"] == "Ada" and profile.json()["email"] == "ada@example.com"
    requests = logged.get(f"/v1/threads/{thread['id']}")
    assert requests.status == 200, requests.body


def test_the_variant_retries_as_the_router_does(logged: Stack) -> None:
    logged.upstream.reset()
    key = new_key()
    create(logged, simple(key, retry={"count": 2, "on_codes": [503]}))
    logged.upstream.fail_with(503, times=1)
    served = logged.post("/v2/deployments/invoke", {"key": key, "messages": [{"role": "user", "content": "again"}]})
    assert served.status == 200, served.body
    record = _record(logged, served.headers["x-request-id"])
    assert record is not None
    assert [(a["model"], a["status"]) for a in record["attempts"]] == [("gpt-4o", 503), ("gpt-4o", 200)]
    assert len(logged.upstream.requests) == 2
    logged.upstream.fail_with(503, times=3)
    failed = logged.post("/v2/deployments/invoke", {"key": key, "messages": [{"role": "user", "content": "again"}]})
    assert failed.status == 502 and failed.json()["error"]["upstream_status"] == 503
    assert len(logged.upstream.requests) == 2 + 3  # the first try and both retries
