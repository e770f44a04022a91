"""`/health` tells the truth from the first answer: every configured dependency probed at start-up and in the
background, with its latency and last error; `/health/live` answers without touching any of them."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from tests.conftest import http
from tests.gateway_server import GatewayThread, free_port


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def test_an_unreachable_redis_degrades_health_before_any_request_uses_it(tmp_path: Path) -> None:
    dead = free_port()
    settings = {
        "storage": {"url": f"sqlite:///{tmp_path}/p.db"},
        "cache": {"url": f"redis://127.0.0.1:{dead}/0"},
        "routing": {"state_url": f"redis://127.0.0.1:{dead}/1"},
    }
    with GatewayThread(settings) as gw:
        response = http("GET", f"{gw.url}/health")
        report = response.json()
        assert response.status == 200 and report["status"] == "degraded" and report["ready"] is True
        deps = report["dependencies"]
        assert set(deps) == {"storage", "cache", "routing_state", "state_sync"}
        for name in ("cache", "routing_state"):
            assert deps[name]["ok"] is False and "Connect" in deps[name]["last_error"], deps[name]
            assert deps[name]["target"].startswith(f"redis://127.0.0.1:{dead}/")
        assert deps["storage"]["ok"] is True and deps["storage"]["latency_ms"] >= 0
        assert report["cache"]["ok"] is False  # the cache's own link was marked down by the probe
        live = http("GET", f"{gw.url}/health/live")
        assert live.status == 200 and live.json() == {"status": "live"} and live.headers["x-request-id"]
        assert len(response.headers["x-request-id"]) == 32


def test_every_dependency_answering_is_ok_with_its_latency(tmp_path: Path) -> None:
    if not answers(6379):
        pytest.skip("Redis does not answer on 127.0.0.1:6379")
    settings = {"storage": {"url": f"sqlite:///{tmp_path}/p.db"}, "cache": {"url": "redis://127.0.0.1:6379/0"}}
    with GatewayThread(settings) as gw:
        report = http("GET", f"{gw.url}/health").json()
        assert report["status"] == "ok", report
        for name in ("storage", "cache", "routing_state", "state_sync"):
            dep = report["dependencies"][name]
            assert dep["ok"] is True and isinstance(dep["latency_ms"], float) and dep["checked_at"] > 0, (name, dep)


def test_an_unreachable_database_is_reported_without_its_password_and_live_stays_up() -> None:
    dead = free_port()
    settings = {"storage": {"url": f"postgresql://portico:s3cret@127.0.0.1:{dead}/test", "connect_timeout": 1}}
    with GatewayThread(settings) as gw:
        started = time.monotonic()
        live = http("GET", f"{gw.url}/health/live")
        assert live.status == 200 and time.monotonic() - started < 1
        response = http("GET", f"{gw.url}/health")
        assert "s3cret" not in response.body.decode()
        storage = response.json()["dependencies"]["storage"]
        assert storage["ok"] is False and storage["target"] == f"postgresql+asyncpg://portico:***@127.0.0.1:{dead}/test"
        assert response.json()["status"] == "degraded"
