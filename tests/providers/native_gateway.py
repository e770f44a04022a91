"""A gateway in front of one native provider's mock upstream, for the adapters' end-to-end tests."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import openai

from tests.conftest import KEY, Response, http
from tests.gateway_server import GatewayThread
from tests.upstreams.server import UpstreamThread


class NativeGateway:
    def __init__(self, gateway: GatewayThread, upstream: UpstreamThread) -> None:
        self.gateway, self.upstream = gateway, upstream
        self.client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=0)

    def post(self, body: dict[str, Any]) -> Response:
        headers = {"content-type": "application/json", "authorization": f"Bearer {KEY}"}
        return http("POST", self.gateway.url + "/v1/chat/completions", json.dumps(body).encode(), headers)

    def sent(self) -> Any:
        """The body the upstream received last."""
        return self.upstream.state.requests[-1]["body"]


@contextmanager
def native_gateway(install: Callable[..., Any], provider: str, api_key: str) -> Iterator[NativeGateway]:
    """The mock upstream `install` sets up, and a gateway (call log off) whose `provider` points at it."""
    with UpstreamThread([install]) as up:
        settings = {
            "auth": {"keys": [KEY]},
            "providers": {provider: {"api_key": api_key, "base_url": up.url}},
            "logging": {"request_log": False},
        }
        with GatewayThread(settings) as gateway:
            yield NativeGateway(gateway, up)
