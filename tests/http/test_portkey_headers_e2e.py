"""Portkey's per-request headers through the `portkey-ai` SDK and raw HTTP: custom hosts (allowlisted only),
forwarded headers, request timeouts and retry counts — and what the call log records for them."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from portkey_ai import Portkey

from tests.conftest import KEY, Response, http, stack_settings
from tests.gateway_server import GatewayThread
from tests.upstreams import openai as openai_upstream
from tests.upstreams.server import UpstreamThread

HI: Any = [{"role": "user", "content": "hi"}]


class Env:
    def __init__(self, gateway: GatewayThread, upstream: UpstreamThread) -> None:
        self.gateway, self.upstream = gateway, upstream

    def post(self, body: Any, headers: dict[str, str], path: str = "/v1/chat/completions") -> Response:
        sent = {"content-type": "application/json", "x-portkey-api-key": KEY, **headers}
        return http("POST", self.gateway.url + path, json.dumps(body).encode(), sent)

    def record(self, request_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + 5
        while True:
            found = http("GET", f"{self.gateway.url}/v1/logs/{request_id}", None, {"authorization": f"Bearer {KEY}"})
            if found.status == 200:
                record: dict[str, Any] = json.loads(found.body)
                return record
            assert time.monotonic() < deadline, f"no record for {request_id}"
            time.sleep(0.02)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with UpstreamThread([openai_upstream.install]) as upstream:
        settings = stack_settings(
            upstream.url,
            portkey={"custom_host_allowlist": [f"{upstream.url}/v1"]},
            storage={"url": f"sqlite:///{tmp_path_factory.mktemp('pk') / 'portico.db'}"},
            logging={"request_log": True},
        )
        with GatewayThread(settings) as gateway:
            yield Env(gateway, upstream)


@pytest.fixture(autouse=True)
def _clean(env: Env) -> Iterator[None]:
    env.upstream.state.reset()
    yield
    env.upstream.state.reset()


def test_custom_host_on_the_allowlist_is_used(env: Env) -> None:
    # deadprov's configured base_url refuses connections: only the custom host can answer.
    client = Portkey(
        base_url=env.gateway.url + "/v1",
        api_key=KEY,
        provider="deadprov",
        custom_host=f"{env.upstream.url}/v1",
        Authorization="Bearer sk-client-key",
    )
    reply = client.chat.completions.create(model="gpt-4o", messages=HI)
    assert reply.choices[0].message.content
    assert env.upstream.state.requests[-1]["headers"]["Authorization"] == "Bearer sk-client-key"


@pytest.mark.parametrize(
    "host",
    ["http://169.254.169.254/latest", "http://127.0.0.1:6379/", "file:///etc/passwd", "http://user:pw@127.0.0.1:1/v1"],
)
def test_custom_host_off_the_allowlist_is_refused(env: Env, host: str) -> None:
    response = env.post(
        {"model": "gpt-4o", "messages": HI}, {"x-portkey-provider": "openai", "x-portkey-custom-host": host}
    )
    assert response.status == 400
    assert json.loads(response.body)["error"]["code"] == "custom_host_not_allowed"
    assert env.upstream.state.requests == []


def test_forward_headers_reach_the_upstream_but_never_credentials(env: Env) -> None:
    headers = {
        "x-portkey-provider": "openai",
        "x-portkey-forward-headers": "x-tenant-id, x-feature, authorization",
        "x-tenant-id": "acme",
        "x-feature": "beta",
        "x-not-listed": "no",
    }
    assert env.post({"model": "gpt-4o", "messages": HI}, headers).status == 200
    sent = {k.lower(): v for k, v in env.upstream.state.requests[-1]["headers"].items()}
    assert sent["x-tenant-id"] == "acme" and sent["x-feature"] == "beta" and "x-not-listed" not in sent
    assert sent["authorization"] == "Bearer sk-upstream"  # the configured key, not a forwarded one


def test_request_timeout_header(env: Env) -> None:
    env.upstream.state.set_mode("gpt-slow", "slow", 1.0)
    response = env.post({"model": "openai/gpt-slow", "messages": HI}, {"x-portkey-request-timeout": "200"})
    assert response.status == 504


def test_retry_count_header(env: Env) -> None:
    env.upstream.state.fail_with(503, "flaky", times=2, model="gpt-flaky")
    response = env.post({"model": "openai/gpt-flaky", "messages": HI}, {"x-portkey-retry-count": "2"})
    assert response.status == 200 and response.headers["x-portkey-retry-attempt-count"] == "2"
    assert env.upstream.state.models_seen() == ["gpt-flaky"] * 3
    bad = env.post({"model": "openai/gpt-4o", "messages": HI}, {"x-portkey-retry-count": "many"})
    assert bad.status == 422


def test_trace_metadata_and_attempts_are_logged(env: Env) -> None:
    env.upstream.state.fail_with(500, "down", model="gpt-down")
    request_id = uuid.uuid4().hex
    body = {"model": "openai/gpt-down", "messages": HI, "fallbacks": [{"model": "openai/gpt-up"}]}
    headers = {"x-request-id": request_id, "x-portkey-trace-id": "trace-77", "x-portkey-metadata": '{"team": "blue"}'}
    response = env.post(body, headers, "/v2/router/chat/completions")
    assert response.status == 200
    record = env.record(request_id)
    assert record["trace_id"] == "trace-77" and record["metadata"] == {"team": "blue"}
    assert [(a["model"], a["status"]) for a in record["attempts"]] == [("gpt-down", 500), ("gpt-up", 200)]
    assert all(a["latency_ms"] >= 0 for a in record["attempts"])


def test_a_stream_cut_after_content_is_logged_partial(env: Env) -> None:
    env.upstream.state.set_mode("gpt-cut", "cut_after", 3)
    request_id = uuid.uuid4().hex
    response = env.post({"model": "openai/gpt-cut", "messages": HI, "stream": True}, {"x-request-id": request_id})
    assert b'"error"' in response.body
    record = env.record(request_id)
    assert record["partial"] is True and record["error_type"]


def test_a_cache_hit_is_logged_with_zero_cost_and_its_latency(env: Env) -> None:
    body = {
        "model": "openai/gpt-4o",
        "messages": [{"role": "user", "content": uuid.uuid4().hex}],
        "cache": {"type": "exact_match", "ttl": 60},
    }
    env.post(body, {}, "/v2/router/chat/completions")
    request_id = uuid.uuid4().hex
    assert (
        env.post(body, {"x-request-id": request_id}, "/v2/router/chat/completions").headers["x-portico-cache"] == "HIT"
    )
    record = env.record(request_id)
    assert record["cache_status"] == "HIT" and record["cost_usd"] == 0.0 and record["latency_ms"] > 0
