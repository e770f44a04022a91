"""Shared fixtures: a mock upstream speaking each provider's wire format, and a real gateway in front of it."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.gateway_server import GatewayThread
from tests.upstreams import openai as openai_upstream
from tests.upstreams.server import UpstreamState, UpstreamThread

KEY = "sk-portico-test"
SHARED_REDIS = ("127.0.0.1", 6379)


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None, timeout: float = 30
) -> Response:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return Response(answer.status, {k.lower(): v for k, v in answer.headers.items()}, answer.read())
    except urllib.error.HTTPError as error:
        with error:  # it holds the connection: unclosed, each error answer left a socket to the collector
            return Response(error.code, {k.lower(): v for k, v in error.headers.items()}, error.read())


@dataclass
class Stack:
    gateway: GatewayThread
    upstream_thread: UpstreamThread

    @property
    def upstream(self) -> UpstreamState:
        return self.upstream_thread.state

    def post_raw(self, path: str, raw: bytes, key: str | None = KEY, headers: dict[str, str] | None = None) -> Response:
        sent = {"content-type": "application/json", **(headers or {})}
        if key is not None:
            sent["authorization"] = f"Bearer {key}"
        return http("POST", self.gateway.url + path, raw, sent)

    def post(self, path: str, body: Any, key: str | None = KEY, headers: dict[str, str] | None = None) -> Response:
        return self.post_raw(path, json.dumps(body).encode(), key, headers)

    def get(self, path: str, key: str | None = KEY) -> Response:
        return http("GET", self.gateway.url + path, None, {"authorization": f"Bearer {key}"} if key else {})


def stack_settings(upstream_url: str, **overrides: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "auth": {"keys": [KEY]},
        "server": {"max_body_bytes": 100_000},
        "providers": {
            "openai": {"api_key": "sk-upstream", "base_url": f"{upstream_url}/v1"},
            "vllm": {
                "api_key": "sk-vllm",
                "base_url": f"{upstream_url}/v1",
                "models": ["meta-llama/Llama-3.1-8B-Instruct"],
            },
            "slowprov": {"type": "openai", "api_key": "sk-upstream", "base_url": f"{upstream_url}/v1", "timeout": 0.3},
            "deadprov": {"type": "openai", "api_key": "sk-upstream", "base_url": "http://127.0.0.1:1/v1"},
        },
        "storage": {"url": "sqlite:///:memory:"},
        "logging": {"request_log": False},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(settings.get(key), dict):
            settings[key] = {**settings[key], **value}
        else:
            settings[key] = value
    return settings


def redis_problem(host: str, port: int, timeout: float = 2.0) -> str | None:
    """None when a Redis answers PING at host:port, else what went wrong (for a skip reason)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            conn.settimeout(timeout)
            conn.sendall(b"PING\r\n")
            reply = conn.recv(64)
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None if reply.startswith(b"+PONG") else f"unexpected reply to PING: {reply[:40]!r}"


@pytest.fixture
def shared_redis_url() -> str:
    """The machine's Redis (`redis://127.0.0.1:6379/0`); the test skips, saying why, when it does not answer."""
    host, port = SHARED_REDIS
    problem = redis_problem(host, port)
    if problem is not None:
        pytest.skip(f"Redis at {host}:{port} does not answer ({problem})")
    return f"redis://{host}:{port}/0"


@pytest.fixture(scope="session")
def upstream_thread() -> Iterator[UpstreamThread]:
    state = UpstreamState(default_modes={"slow-model": ("slow", 2.0)})
    with UpstreamThread([openai_upstream.install], state) as thread:
        yield thread


@pytest.fixture(scope="session")
def _gateway(upstream_thread: UpstreamThread) -> Iterator[GatewayThread]:
    with GatewayThread(stack_settings(upstream_thread.url)) as gateway:
        yield gateway


@pytest.fixture
def stack(_gateway: GatewayThread, upstream_thread: UpstreamThread) -> Iterator[Stack]:
    upstream_thread.state.reset()
    yield Stack(_gateway, upstream_thread)
    upstream_thread.state.reset()
