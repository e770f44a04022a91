"""An upstream that echoes the credential it was sent (as OpenAI does: `Incorrect API key provided: sk-…`) never
gets it past the gateway: not in the client's answer, not in the call log; for every adapter, both dialects,
streaming or not, whether the key came from the config or from a virtual key."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import KEY, Response, http
from tests.gateway_server import GatewayThread
from tests.upstreams import anthropic, azure, bedrock, cohere, gemini
from tests.upstreams.server import UpstreamThread


@dataclass(frozen=True)
class Target:
    provider: str
    model: str
    secret: str  # what the config holds
    vk_secret: str  # what a virtual key holds (the mocks that check the key accept only theirs)


TARGETS = [
    Target("openai", "gpt-4o", "sk-proj-CONFIGsecret0123456789abcdef", "sk-proj-VIRTUALsecret9876543210fedcba"),
    Target("anthropic", "claude-3-5-haiku", anthropic.API_KEY, anthropic.API_KEY),
    Target("gemini", "gemini-2.0-flash", "AIzaSyCONFIGsecret0123456789", "AIzaSyVIRTUALsecret987654321"),
    Target("cohere", "command-r", "co-CONFIGsecret0123456789abcd", "co-VIRTUALsecret9876543210dcba"),
    Target("bedrock", "anthropic.claude-3-haiku-20240307-v1:0", bedrock.API_KEY, bedrock.API_KEY),
    Target("azure", "gpt4o-deploy", azure.API_KEY, azure.API_KEY),
]


class Scrubbed:
    def __init__(self, gateway: GatewayThread, upstream: UpstreamThread) -> None:
        self.gateway, self.upstream = gateway, upstream

    def chat(self, target: Target, path: str, stream: bool, headers: dict[str, str]) -> Response:
        body = {
            "model": f"{target.provider}/{target.model}" if "x-portkey-virtual-key" not in headers else target.model,
            "messages": [{"role": "user", "content": f"hello {uuid.uuid4().hex}"}],
            "stream": stream,
        }
        sent = {"content-type": "application/json", "authorization": f"Bearer {KEY}", **headers}
        return http("POST", self.gateway.url + path, json.dumps(body).encode(), sent)

    def record(self, request_id: str) -> str:
        """The call record, as the log API serves it (one record and the listing)."""
        deadline = time.monotonic() + 5
        while True:
            one = http("GET", f"{self.gateway.url}/v1/logs/{request_id}", None, {"authorization": f"Bearer {KEY}"})
            if one.status == 200:
                listing = http("GET", f"{self.gateway.url}/v1/logs?limit=5", None, {"authorization": f"Bearer {KEY}"})
                assert listing.status == 200
                return one.body.decode() + listing.body.decode()
            assert one.status == 404, one.body
            assert time.monotonic() < deadline, f"no call record for {request_id}"
            time.sleep(0.02)


@pytest.fixture(scope="module")
def scrubbed() -> Iterator[Scrubbed]:
    installers = [azure.install, anthropic.install, gemini.install, cohere.install, bedrock.install]
    with UpstreamThread(installers) as up:
        providers: dict[str, Any] = {
            t.provider: {"api_key": t.secret, "base_url": up.url + ("/v1" if t.provider == "openai" else "")}
            for t in TARGETS
        }
        providers["bedrock"]["region"] = bedrock.REGION
        settings = {
            "auth": {"keys": [KEY]},
            "providers": providers,
            "logging": {"request_log": True},
        }
        with GatewayThread(settings) as gateway:
            admin = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
            for t in TARGETS:
                key = {"provider": t.provider, "api_key": t.vk_secret, "id": f"vk-{t.provider}"}
                created = http("POST", gateway.url + "/v1/admin/virtual-keys", json.dumps(key).encode(), admin)
                assert created.status == 201, created.body
            yield Scrubbed(gateway, up)


def assert_scrubbed(scrubbed: Scrubbed, answer: Response, secret: str) -> None:
    assert secret.encode() not in answer.body, answer.body
    assert b"[REDACTED]" in answer.body, answer.body  # the upstream did echo it: the gateway cut it out
    record = scrubbed.record(answer.headers["x-request-id"])
    assert secret not in record
    assert "[REDACTED]" in record


@pytest.mark.parametrize("target", TARGETS, ids=[t.provider for t in TARGETS])
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v2/router/chat/completions"])
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("source", ["config", "virtual-key"])
def test_an_echoed_credential_never_reaches_the_client_or_the_log(
    scrubbed: Scrubbed, target: Target, path: str, stream: bool, source: str
) -> None:
    scrubbed.upstream.state.reset()
    scrubbed.upstream.state.set_mode(target.model, "echo_key")
    headers = {"x-portkey-virtual-key": f"vk-{target.provider}"} if source == "virtual-key" else {}
    secret = target.vk_secret if source == "virtual-key" else target.secret
    answer = scrubbed.chat(target, path, stream, headers)
    assert answer.status == 401, answer.body
    assert scrubbed.upstream.state.requests, "the upstream was not called"
    assert_scrubbed(scrubbed, answer, secret)
    message = json.loads(answer.body)["error"]["message"]
    assert "[REDACTED]" in message


@pytest.mark.parametrize(
    "target", [t for t in TARGETS if t.provider in ("openai", "anthropic")], ids=lambda t: t.provider
)
@pytest.mark.parametrize("after", [0, 4], ids=["before-content", "mid-stream"])
@pytest.mark.parametrize("source", ["config", "virtual-key"])
def test_an_in_band_stream_error_echoing_the_credential_is_scrubbed(
    scrubbed: Scrubbed, target: Target, after: int, source: str
) -> None:
    scrubbed.upstream.state.reset()
    scrubbed.upstream.state.set_mode(target.model, "inband_echo_key", after)
    headers = {"x-portkey-virtual-key": f"vk-{target.provider}"} if source == "virtual-key" else {}
    secret = target.vk_secret if source == "virtual-key" else target.secret
    answer = scrubbed.chat(target, "/v1/chat/completions", True, headers)
    assert answer.status == 200 if after else answer.status >= 500, answer.body  # Portkey keeps upstream 5xx
    if after:
        assert answer.body.endswith(b"data: [DONE]\n\n")
    assert_scrubbed(scrubbed, answer, secret)
