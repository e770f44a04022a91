"""Reliable routing as users meet it: orq's body fields through `orq-ai-sdk`, Portkey configs through `portkey-ai`,
against a mock upstream whose models fail on demand."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from orq_ai_sdk import Orq
from portkey_ai import Portkey

from tests.conftest import KEY, Response, http, stack_settings
from tests.gateway_server import GatewayThread
from tests.upstreams.server import UpstreamState, UpstreamThread

HI: Any = [{"role": "user", "content": "hi"}]


class Routed:
    def __init__(self, gateway: GatewayThread, upstream: UpstreamThread) -> None:
        self.gateway, self.upstream = gateway, upstream
        self.orq = Orq(api_key=KEY, server_url=gateway.url)
        self.openai = openai.OpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=0)
        self.clients: list[Portkey] = []

    def close(self) -> None:
        """Each Portkey client holds two HTTP clients (its own and its OpenAI client's); `close()` ends only the
        first. Unclosed, their sockets surface as ResourceWarnings in whichever later test collects them."""
        self.openai.close()
        for client in self.clients:
            client.openai_client.close()
            client.close()

    @property
    def state(self) -> UpstreamState:
        return self.upstream.state

    def portkey(self, config: Any | None = None, **kw: Any) -> Portkey:
        client = Portkey(base_url=self.gateway.url + "/v1", api_key=KEY, config=config, max_retries=0, **kw)
        self.clients.append(client)
        return client

    def post(
        self, body: Any, headers: dict[str, str] | None = None, path: str = "/v2/router/chat/completions"
    ) -> Response:
        sent = {"content-type": "application/json", "authorization": f"Bearer {KEY}", **(headers or {})}
        return http("POST", self.gateway.url + path, json.dumps(body).encode(), sent)


@pytest.fixture(scope="module")
def routed_stack() -> Iterator[Routed]:
    from tests.upstreams import openai as openai_upstream

    with UpstreamThread([openai_upstream.install]) as upstream:
        settings = stack_settings(upstream.url, routing={"cooldown_seconds": 1.0, "failure_threshold": 2})
        with GatewayThread(settings) as gateway:
            routed = Routed(gateway, upstream)
            yield routed
            routed.close()


@pytest.fixture
def r(routed_stack: Routed) -> Iterator[Routed]:
    routed_stack.state.reset()
    yield routed_stack
    routed_stack.state.reset()


def test_retry_succeeds_on_a_flaky_model_with_exactly_count_plus_one_calls(r: Routed) -> None:
    r.state.fail_with(429, "slow down", times=2, model="flaky")
    reply = r.orq.router.chat.completions.create(
        model="openai/flaky", messages=HI, retry={"count": 2, "on_codes": [429]}
    )
    assert "hi" in (reply.choices[0].message.content or "")
    assert r.state.models_seen() == ["flaky", "flaky", "flaky"]


def test_retry_gives_up_after_count_and_reports_the_upstream_status(r: Routed) -> None:
    r.state.fail_with(429, "always limited", model="limited")
    response = r.post({"model": "openai/limited", "messages": HI, "retry": {"count": 1, "on_codes": [429]}})
    assert response.status == 429 and "always limited" in response.body.decode()
    assert response.headers["x-portico-attempts"] == "2"
    assert r.state.models_seen() == ["limited", "limited"]


def test_codes_outside_on_codes_are_not_retried(r: Routed) -> None:
    r.state.fail_with(500, "boom", model="broken")
    response = r.post({"model": "openai/broken", "messages": HI, "retry": {"count": 3, "on_codes": [429]}})
    assert response.status == 502 and r.state.models_seen() == ["broken"]


def test_retry_after_is_honoured(r: Routed) -> None:
    r.state.fail_with(429, "wait a second", retry_after=1, times=1, model="patient")
    response = r.post({"model": "openai/patient", "messages": HI, "retry": {"count": 1, "on_codes": [429]}})
    assert response.status == 200
    first, second = r.state.requests
    assert second["t"] - first["t"] >= 0.95


def test_fallback_serves_when_the_primary_always_fails(r: Routed) -> None:
    r.state.fail_with(500, "primary down", model="primary")
    reply = r.orq.router.chat.completions.create(
        model="openai/primary", messages=HI, fallbacks=[{"model": "openai/backup"}]
    )
    assert reply.model == "backup"
    assert r.state.models_seen() == ["primary", "backup"]
    response = r.post({"model": "openai/primary", "messages": HI, "fallbacks": [{"model": "openai/backup"}]})
    assert response.headers["x-portico-model"] == "backup" and response.headers["x-portico-attempts"] == "2"


def test_gateway_errors_never_fall_back(r: Routed) -> None:
    response = r.post(
        {"model": "openai/primary", "messages": HI, "temperature": 7, "fallbacks": [{"model": "openai/b"}]}
    )
    assert response.status == 422 and r.state.requests == []


def test_timeout_falls_back_and_all_exhausted_is_504(r: Routed) -> None:
    r.state.set_mode("sleepy", "slow", 1.0)
    body = {
        "model": "openai/sleepy",
        "messages": HI,
        "timeout": {"call_timeout": 200},
        "fallbacks": [{"model": "openai/quick"}],
    }
    response = r.post(body)
    assert response.status == 200 and response.headers["x-portico-model"] == "quick"
    response = r.post({**body, "fallbacks": [{"model": "openai/sleepy"}]})
    assert response.status == 504 and json.loads(response.body)["code"] == "504"


def test_weighted_balancing_follows_the_weights(r: Routed) -> None:
    balancer = {
        "type": "weight_based",
        "models": [{"model": "openai/heavy", "weight": 0.8}, {"model": "openai/light", "weight": 0.2}],
    }
    for _ in range(1000):
        assert r.post({"model": "openai/ignored", "messages": HI, "load_balancer": balancer}).status == 200
    counts = Counter(r.state.models_seen())
    assert set(counts) == {"heavy", "light"}
    # Binomial(1000, 0.8): sd ≈ 12.6; ±5 sd keeps this test from ever flaking while catching a wrong weighting.
    assert abs(counts["heavy"] - 800) < 64


def test_stream_failure_before_first_chunk_falls_back_invisibly(r: Routed) -> None:
    r.state.fail_with(503, "not now", model="shaky")
    r.state.set_mode("stalled", "slow_first_chunk", 2.0)
    for primary, timeout in (("shaky", None), ("stalled", {"call_timeout": 300})):
        body: dict[str, Any] = {
            "model": f"openai/{primary}",
            "messages": HI,
            "stream": True,
            "fallbacks": [{"model": "openai/steady"}],
        }
        if timeout:
            body["timeout"] = timeout
        response = r.post(body)
        assert response.status == 200 and response.headers["x-portico-model"] == "steady"
        events = [line[6:] for line in response.body.decode().splitlines() if line.startswith("data: ")]
        assert events[-1] == "[DONE]"
        chunks = [json.loads(e) for e in events[:-1]]
        assert all("error" not in c for c in chunks)
        assert {c["model"] for c in chunks} == {"steady"}


def test_stream_failure_after_content_ends_with_an_error_event(r: Routed) -> None:
    r.state.set_mode("fragile", "cut_after", 3)
    response = r.post(
        {"model": "openai/fragile", "messages": HI, "stream": True, "fallbacks": [{"model": "openai/steady"}]}
    )
    events = [line[6:] for line in response.body.decode().splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]" and "error" in json.loads(events[-2])
    assert r.state.models_seen() == ["fragile"]  # content was sent: no silent switch to another model


def test_cooldown_skips_a_dead_target_and_recovers(r: Routed) -> None:
    r.state.fail_with(500, "dead", model="dead")
    body = {"model": "openai/dead", "messages": HI, "fallbacks": [{"model": "openai/alive"}]}
    for _ in range(2):  # failure_threshold = 2
        assert r.post(body).status == 200
    r.state.requests.clear()
    assert r.post(body).status == 200
    assert r.state.models_seen() == ["alive"]  # cooled down: skipped
    r.state.reset()
    time.sleep(1.1)  # cooldown_seconds = 1
    assert r.post(body).headers["x-portico-model"] == "dead"  # probed back and serving again


def test_orq_deprecated_routing_fields_and_top_level_wins(r: Routed) -> None:
    r.state.fail_with(500, "down", model="one")
    response = r.post({"model": "openai/one", "messages": HI, "orq": {"fallbacks": [{"model": "openai/two"}]}})
    assert response.headers["x-portico-model"] == "two"
    response = r.post(
        {
            "model": "openai/one",
            "messages": HI,
            "fallbacks": [{"model": "openai/three"}],
            "orq": {"fallbacks": [{"model": "openai/two"}]},
        }
    )
    assert response.headers["x-portico-model"] == "three"


# ---- Portkey dialect -------------------------------------------------------------------------------------------


def test_portkey_fallback_config_and_option_index(r: Routed) -> None:
    r.state.fail_with(500, "down", model="gpt-primary")
    config = {
        "strategy": {"mode": "fallback"},
        "targets": [
            {"provider": "openai", "override_params": {"model": "gpt-primary"}},
            {"provider": "openai", "override_params": {"model": "gpt-backup"}},
        ],
    }
    reply = r.portkey(config=config).chat.completions.create(model="gpt-4o", messages=HI)
    assert reply.get_headers()["last-used-option-index"] == "config.targets[1]"
    assert reply.model == "gpt-backup"
    assert r.state.models_seen() == ["gpt-primary", "gpt-backup"]


def test_portkey_on_status_codes_limits_fallback(r: Routed) -> None:
    r.state.fail_with(400, "bad request", model="gpt-primary")
    config = {
        "strategy": {"mode": "fallback", "on_status_codes": [429]},
        "targets": [
            {"provider": "openai", "override_params": {"model": "gpt-primary"}},
            {"provider": "openai", "override_params": {"model": "gpt-backup"}},
        ],
    }
    response = r.post(
        {"model": "gpt-4o", "messages": HI}, {"x-portkey-config": json.dumps(config)}, "/v1/chat/completions"
    )
    assert response.status == 400 and r.state.models_seen() == ["gpt-primary"]


def test_portkey_retry_config(r: Routed) -> None:
    r.state.fail_with(503, "flaky", times=2, model="gpt-flaky")
    config = {"retry": {"attempts": 3}, "provider": "openai", "override_params": {"model": "gpt-flaky"}}
    reply = r.portkey(config=config).chat.completions.create(model="gpt-4o", messages=HI)
    assert reply.get_headers()["retry-attempt-count"] == "2"
    assert r.state.models_seen() == ["gpt-flaky"] * 3


def test_portkey_conditional_config_routes_by_metadata(r: Routed) -> None:
    config = {
        "strategy": {
            "mode": "conditional",
            "conditions": [
                {"query": {"metadata.plan": {"$in": ["pro", "team"]}}, "then": "smart"},
                {"query": {"$and": [{"metadata.plan": "free"}, {"params.max_tokens": {"$lte": 100}}]}, "then": "cheap"},
            ],
            "default": "cheap",
        },
        "targets": [
            {"name": "smart", "provider": "openai", "override_params": {"model": "gpt-smart"}},
            {"name": "cheap", "provider": "openai", "override_params": {"model": "gpt-cheap"}},
        ],
    }
    r.portkey(config=config, metadata={"plan": "pro"}).chat.completions.create(model="gpt-4o", messages=HI)
    r.portkey(config=config, metadata={"plan": "free"}).chat.completions.create(
        model="gpt-4o", messages=HI, max_tokens=50
    )
    r.portkey(config=config).chat.completions.create(model="gpt-4o", messages=HI)
    assert r.state.models_seen() == ["gpt-smart", "gpt-cheap", "gpt-cheap"]


def test_portkey_loadbalance_config(r: Routed) -> None:
    config = {
        "strategy": {"mode": "loadbalance"},
        "targets": [
            {"provider": "openai", "override_params": {"model": "lb-a"}, "weight": 1},
            {"provider": "openai", "override_params": {"model": "lb-b"}, "weight": 0},
        ],
    }
    client = r.portkey(config=config)
    for _ in range(20):
        client.chat.completions.create(model="gpt-4o", messages=HI)
    assert set(r.state.models_seen()) == {"lb-a"}


def test_bad_portkey_configs_are_400(r: Routed) -> None:
    for config, fragment in (
        ("{not json", "not valid JSON"),
        ('{"strategy": {"mode": "sideways"}, "targets": [{}]}', "mode"),
        ("pc-unknown", "not found"),
        ('{"retry": {"attempts": 9}}', "attempts"),
    ):
        response = r.post(
            {"model": "openai/gpt-4o", "messages": HI}, {"x-portkey-config": config}, "/v1/chat/completions"
        )
        assert response.status == 400, (config, response.body)
        assert fragment in json.loads(response.body)["error"]["message"]
    assert r.state.requests == []


def test_stored_config_and_virtual_key_never_leak_the_secret(r: Routed) -> None:
    admin = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
    created = http(
        "POST",
        r.gateway.url + "/v1/admin/virtual-keys",
        json.dumps({"provider": "openai", "api_key": "sk-virtual-secret-123456", "id": "team-a"}).encode(),
        admin,
    )
    assert created.status == 201, created.body
    assert b"sk-virtual-secret-123456" not in created.body and json.loads(created.body)["api_key"].endswith("3456")
    listed = http("GET", r.gateway.url + "/v1/admin/virtual-keys", None, admin)
    assert b"sk-virtual-secret-123456" not in listed.body
    assert http("GET", r.gateway.url + "/v1/admin/virtual-keys", None, {}).status == 401
    stored = {
        "strategy": {"mode": "fallback"},
        "targets": [{"virtual_key": "team-a", "override_params": {"model": "vk-model"}}],
    }
    assert http("PUT", r.gateway.url + "/v1/admin/configs/pc-team-a", json.dumps(stored).encode(), admin).status == 200

    reply = r.portkey(virtual_key="team-a").chat.completions.create(model="gpt-4o", messages=HI)
    assert "sk-virtual-secret" not in reply.model_dump_json()
    assert r.state.requests[-1]["headers"]["Authorization"] == "Bearer sk-virtual-secret-123456"
    r.portkey(config="pc-team-a").chat.completions.create(model="gpt-4o", messages=HI)
    assert r.state.requests[-1]["body"]["model"] == "vk-model"
    assert r.state.requests[-1]["headers"]["Authorization"] == "Bearer sk-virtual-secret-123456"
    missing = r.post({"model": "gpt-4o", "messages": HI}, {"x-portkey-virtual-key": "nope"}, "/v1/chat/completions")
    assert missing.status == 400 and json.loads(missing.body)["error"]["code"] == "virtual_key_not_found"


def test_portkey_provider_header_and_byok(r: Routed) -> None:
    client = r.portkey(provider="openai", Authorization="Bearer sk-client-own")
    client.chat.completions.create(model="gpt-4o", messages=HI)
    sent = r.state.requests[-1]
    assert sent["body"]["model"] == "gpt-4o"
    assert sent["headers"]["Authorization"] == "Bearer sk-client-own"


def test_portkey_trace_headers_are_echoed(r: Routed) -> None:
    reply = r.portkey(trace_id="trace-abc-1").chat.completions.create(model="openai/gpt-4o", messages=HI)
    assert reply.get_headers()["trace-id"] == "trace-abc-1"


def test_cooldown_is_shared_across_instances_through_redis(shared_redis_url: str) -> None:
    import uuid

    from tests.upstreams import openai as openai_upstream

    dead = f"dead-{uuid.uuid4().hex[:8]}"  # unique: the machine's Redis is shared by every run
    with UpstreamThread([openai_upstream.install]) as upstream:
        settings = stack_settings(
            upstream.url,
            routing={"cooldown_seconds": 30, "failure_threshold": 2, "state_url": shared_redis_url},
        )
        with GatewayThread(settings) as one, GatewayThread(settings) as two:
            upstream.state.fail_with(500, "dead", model=dead)
            body = json.dumps({"model": f"openai/{dead}", "messages": HI, "fallbacks": [{"model": "openai/alive"}]})
            headers = {"content-type": "application/json", "authorization": f"Bearer {KEY}"}
            for _ in range(2):
                assert http("POST", one.url + "/v2/router/chat/completions", body.encode(), headers).status == 200
            upstream.state.requests.clear()
            response = http("POST", two.url + "/v2/router/chat/completions", body.encode(), headers)
            assert response.status == 200 and response.headers["x-portico-model"] == "alive"
            assert upstream.state.models_seen() == ["alive"]  # instance two never tried the target one saw die


def test_virtual_keys_and_configs_survive_a_restart_encrypted_at_rest(tmp_path: Any) -> None:
    import sqlite3

    from tests.upstreams import openai as openai_upstream

    db = tmp_path / "portico.db"
    admin = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
    with UpstreamThread([openai_upstream.install]) as upstream:
        settings = stack_settings(upstream.url, storage={"url": f"sqlite:///{db}"})
        with GatewayThread(settings) as gateway:
            key = {"provider": "openai", "api_key": "sk-persisted-secret-987", "id": "kept"}
            assert http("POST", gateway.url + "/v1/admin/virtual-keys", json.dumps(key).encode(), admin).status == 201
            config = {"virtual_key": "kept", "override_params": {"model": "kept-model"}}
            assert (
                http("PUT", gateway.url + "/v1/admin/configs/pc-kept", json.dumps(config).encode(), admin).status == 200
            )
        with sqlite3.connect(db) as conn:
            dumped = "\n".join(conn.iterdump())
        assert "sk-persisted-secret-987" not in dumped and "kept-model" in dumped
        with GatewayThread(settings) as gateway:
            sent = {"content-type": "application/json", "x-portkey-api-key": KEY, "x-portkey-config": "pc-kept"}
            body = json.dumps({"model": "gpt-4o", "messages": HI}).encode()
            assert http("POST", gateway.url + "/v1/chat/completions", body, sent).status == 200
            assert upstream.state.requests[-1]["headers"]["Authorization"] == "Bearer sk-persisted-secret-987"
            assert upstream.state.requests[-1]["body"]["model"] == "kept-model"
