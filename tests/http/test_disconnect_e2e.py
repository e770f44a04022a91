"""A client that hangs up is recorded as cancelled, and its upstream call is cancelled with it."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import KEY, Stack, stack_settings
from tests.gateway_server import GatewayThread
from tests.storage.test_call_log_e2e import new_id, wait_for_record
from tests.upstreams import openai as openai_upstream
from tests.upstreams.server import UpstreamState, UpstreamThread


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    state = UpstreamState(default_modes={"slow-model": ("slow", 3.0)})
    with UpstreamThread([openai_upstream.install], state) as upstream:
        url = f"sqlite:///{Path(tmp_path_factory.mktemp('disconnect')) / 'portico.db'}"
        settings = stack_settings(upstream.url, storage={"url": url}, logging={"request_log": True})
        with GatewayThread(settings) as gateway:
            yield Stack(gateway, upstream)


def _send_and_hang_up(stack: Stack, head: bytes, body: bytes, wait: float) -> None:
    with socket.create_connection(("127.0.0.1", stack.gateway.port), timeout=5) as sock:
        sock.sendall(head + body)
        time.sleep(wait)


def _head(request_id: str, length: int) -> bytes:
    return (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\n"
        f"authorization: Bearer {KEY}\r\nx-request-id: {request_id}\r\ncontent-length: {length}\r\n\r\n"
    ).encode()


def test_a_json_client_that_hangs_up_is_recorded_cancelled_and_its_upstream_call_is_cancelled(logged: Stack) -> None:
    logged.upstream.reset()
    request_id = new_id()
    body = json.dumps({"model": "openai/slow-model", "messages": [{"role": "user", "content": "hi"}]}).encode()
    started = time.monotonic()
    _send_and_hang_up(logged, _head(request_id, len(body)), body, wait=0.3)
    record = wait_for_record(logged, request_id)
    assert record["status"] == 499
    assert record["error_type"] == "client_disconnected"
    assert record["latency_ms"] < 2000, "the call ran on after the client left"
    deadline = time.monotonic() + 2
    while "cancelled" not in logged.upstream.notes and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "cancelled" in logged.upstream.notes, "the upstream call went on after the client left"
    assert time.monotonic() - started < 3.0  # well before the upstream's 3 s answer


def test_a_client_that_hangs_up_mid_body_is_recorded_cancelled_not_as_invalid_json(logged: Stack) -> None:
    request_id = new_id()
    _send_and_hang_up(logged, _head(request_id, 1000), b'{"model": "openai/gpt-4o", "mess', wait=0.1)
    record = wait_for_record(logged, request_id)
    assert record["status"] == 499
    assert record["error_type"] == "client_disconnected"
    assert logged.upstream.requests == [] or all(
        r["headers"].get("x-request-id") != request_id for r in logged.upstream.requests
    )


def test_the_gateway_serves_normally_after_clients_hang_up(logged: Stack) -> None:
    response = logged.post(
        "/v1/chat/completions", {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "x"}]}
    )
    assert response.status == 200, response.body
