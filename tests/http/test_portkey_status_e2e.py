"""A failed upstream as each dialect answers it: Portkey clients get the upstream's own status (as Portkey's gateway
returns the last response), OpenAI and orq clients the gateway's mapping (5xx → 502); no status → 502/504."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from portkey_ai import Portkey

from tests.conftest import KEY, Response, http, stack_settings
from tests.gateway_server import GatewayThread
from tests.upstreams import openai as openai_upstream
from tests.upstreams.server import UpstreamState, UpstreamThread

HI: Any = [{"role": "user", "content": "hi"}]
PORTKEY = {"x-portkey-trace-id": "status-test"}


class Env:
    def __init__(self, gateway: GatewayThread, upstream: UpstreamThread) -> None:
        self.gateway, self.upstream = gateway, upstream

    @property
    def state(self) -> UpstreamState:
        return self.upstream.state

    def post(self, body: Any, headers: dict[str, str] | None = None, path: str = "/v1/chat/completions") -> Response:
        sent = {"content-type": "application/json", "authorization": f"Bearer {KEY}", **(headers or {})}
        return http("POST", self.gateway.url + path, json.dumps(body).encode(), sent)

    def portkey(self, config: Any | None = None) -> Portkey:
        return Portkey(base_url=self.gateway.url + "/v1", api_key=KEY, config=config, max_retries=0)


@pytest.fixture(scope="module")
def module_env() -> Iterator[Env]:
    state = UpstreamState(default_modes={"slow-model": ("slow", 2.0)})
    with UpstreamThread([openai_upstream.install], state) as upstream:
        # failing targets must never cool down here: every test sees its own upstream answer
        settings = stack_settings(upstream.url, routing={"failure_threshold": 1000})
        with GatewayThread(settings) as gateway:
            yield Env(gateway, upstream)


@pytest.fixture
def env(module_env: Env) -> Iterator[Env]:
    module_env.state.reset()
    yield module_env
    module_env.state.reset()


def _error(response: Response, status: int) -> dict[str, Any]:
    assert response.status == status, response.body
    error: dict[str, Any] = response.json()["error"]
    assert error["message"] and "sk-upstream" not in response.body.decode()
    return error


@pytest.mark.parametrize("status", [500, 429, 503])
def test_portkey_clients_get_the_upstream_status_and_message(env: Env, status: int) -> None:
    env.state.fail_with(status, f"upstream said {status}")
    error = _error(env.post({"model": "openai/gpt-4o", "messages": HI}, PORTKEY), status)
    assert error["upstream_status"] == status and error["provider"] == "openai"
    assert f"upstream said {status}" in error["message"]


@pytest.mark.parametrize("status", [500, 503])
def test_openai_and_orq_clients_keep_the_gateway_mapping(env: Env, status: int) -> None:
    env.state.fail_with(status, "down")
    plain = _error(env.post({"model": "openai/gpt-4o", "messages": HI}), 502)
    assert plain["upstream_status"] == status
    orq = env.post({"model": "openai/gpt-4o", "messages": HI}, path="/v2/router/chat/completions")
    assert _error(orq, 502)["upstream_status"] == status and orq.json()["code"] == "502"
    with_portkey = env.post({"model": "openai/gpt-4o", "messages": HI}, PORTKEY, "/v2/router/chat/completions")
    assert _error(with_portkey, 502)["upstream_status"] == status  # the orq dialect, even with Portkey headers


def test_the_openai_sdk_without_portkey_headers_sees_502(env: Env) -> None:
    env.state.fail_with(500, "boom")
    client = openai.OpenAI(base_url=env.gateway.url + "/v1", api_key=KEY, max_retries=0)
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="openai/gpt-4o", messages=HI)
    assert info.value.status_code == 502


@pytest.mark.parametrize("status", [500, 503, 429])
def test_the_portkey_sdk_sees_the_upstream_status(env: Env, status: int) -> None:
    env.state.fail_with(status, f"portkey sees {status}")
    with pytest.raises(Exception) as info:  # the SDK raises its vendored copy of openai's errors
        env.portkey().chat.completions.create(model="openai/gpt-4o", messages=HI)
    assert getattr(info.value, "status_code", None) == status
    assert f"portkey sees {status}" in str(info.value)


def test_retries_exhausted_answer_the_last_upstream_status(env: Env) -> None:
    env.state.fail_with(503, "still flaky", model="gpt-flaky")
    config = {"retry": {"attempts": 2}, "provider": "openai", "override_params": {"model": "gpt-flaky"}}
    response = env.post({"model": "gpt-4o", "messages": HI}, {"x-portkey-config": json.dumps(config)})
    assert _error(response, 503)["upstream_status"] == 503
    assert response.headers["x-portico-attempts"] == "3" and env.state.models_seen() == ["gpt-flaky"] * 3


def test_a_failed_fallback_answers_with_the_last_target_status(env: Env) -> None:
    env.state.fail_with(503, "primary down", model="gpt-primary")
    env.state.fail_with(500, "backup down", model="gpt-backup")
    config = {
        "strategy": {"mode": "fallback"},
        "targets": [
            {"provider": "openai", "override_params": {"model": "gpt-primary"}},
            {"provider": "openai", "override_params": {"model": "gpt-backup"}},
        ],
    }
    with pytest.raises(Exception) as info:  # see above
        env.portkey(config=config).chat.completions.create(model="gpt-4o", messages=HI)
    assert getattr(info.value, "status_code", None) == 500 and "backup down" in str(info.value)
    env.state.requests.clear()  # the SDK may retry a 5xx on its own; one request over HTTP shows the gateway's
    response = env.post({"model": "gpt-4o", "messages": HI}, {"x-portkey-config": json.dumps(config)})
    assert _error(response, 500)["upstream_status"] == 500
    assert env.state.models_seen() == ["gpt-primary", "gpt-backup"]


def test_a_stream_that_fails_before_content_answers_the_upstream_status(env: Env) -> None:
    env.state.fail_with(503, "no stream today")
    response = env.post({"model": "openai/gpt-4o", "messages": HI, "stream": True}, PORTKEY)
    assert _error(response, 503)["upstream_status"] == 503


def test_failures_without_an_upstream_status_keep_502_and_504(env: Env) -> None:
    refused = env.post({"model": "deadprov/gpt-4o", "messages": HI}, PORTKEY)
    assert _error(refused, 502)["code"] == "upstream_unreachable"
    slow = env.post({"model": "slowprov/slow-model", "messages": HI}, PORTKEY)
    assert _error(slow, 504)["code"] == "upstream_timeout"
    env.state.set_mode("gpt-4o", "invalid_json")
    assert _error(env.post({"model": "openai/gpt-4o", "messages": HI}, PORTKEY), 502)["code"] == (
        "upstream_bad_response"
    )


def test_upstream_4xx_is_the_same_in_every_dialect(env: Env) -> None:
    for headers in (PORTKEY, {}):
        env.state.fail_with(400, "bad messages", times=1)
        assert _error(env.post({"model": "openai/gpt-4o", "messages": HI}, headers), 400)["upstream_status"] == 400
