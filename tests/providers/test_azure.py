"""The Azure OpenAI adapter: deployment URLs, Azure auth and api-version on OpenAI's body; fixtures in Azure's format."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest

from portico.config.load import ConfigError
from portico.config.schema import ProviderConfig
from portico.core.errors import UpstreamHTTPError
from portico.core.types import ChatRequest, ProviderCredentials
from portico.providers.azure import DEFAULT_API_VERSION, AzureOpenAIProvider
from portico.providers.registry import load_adapters, providers_from_env
from portico.providers.transport import SSEReader
from tests.conftest import KEY, Stack
from tests.gateway_server import GatewayThread
from tests.upstreams import azure as upstream
from tests.upstreams.server import UpstreamThread

FIXTURES = Path(__file__).parent.parent / "fixtures" / "azure"
BASE = "https://contoso.openai.azure.com"


def provider(**config: Any) -> AzureOpenAIProvider:
    return AzureOpenAIProvider("azure", ProviderConfig.model_validate({"base_url": BASE, "api_key": "k1", **config}))


def request(**kw: Any) -> ChatRequest:
    return ChatRequest(model="azure/x", body={"messages": [{"role": "user", "content": "hi"}], "top_k": 3}, **kw)


def test_deployment_url_api_version_and_body() -> None:
    call = provider().build_request(request(), "my-gpt4o")
    assert call.url == f"{BASE}/openai/deployments/my-gpt4o/chat/completions?api-version={DEFAULT_API_VERSION}"
    assert orjson.loads(call.body) == {"messages": [{"role": "user", "content": "hi"}], "model": "my-gpt4o"}
    assert call.dropped_params == ("top_k",) and call.framing == "sse"
    assert call.headers["api-key"] == "k1" and "Authorization" not in call.headers
    custom = provider(base_url=BASE + "/openai/", api_version="2025-04-01-preview").build_request(request(), "d")
    assert custom.url == f"{BASE}/openai/deployments/d/chat/completions?api-version=2025-04-01-preview"


def test_streams_ask_for_usage() -> None:
    body = orjson.loads(provider().build_request(request(stream=True), "d").body)
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


def test_entra_token_and_per_request_keys() -> None:
    entra = provider(api_key=None, azure_ad_token="eyJ0eXAi")
    headers = entra.build_request(request(), "d").headers
    assert headers["Authorization"] == "Bearer eyJ0eXAi" and "api-key" not in headers
    byok = request(credentials=ProviderCredentials(api_key="k-byok", base_url="https://other.openai.azure.com"))
    call = entra.build_request(byok, "d")
    assert call.headers["api-key"] == "k-byok" and "Authorization" not in call.headers
    assert call.url.startswith("https://other.openai.azure.com/openai/deployments/d/")


def test_endpoint_from_environment_or_a_clear_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURE_OPENAI_ENDPOINT", raising=False)
    with pytest.raises(ConfigError, match=r"providers\.az\.base_url"):
        AzureOpenAIProvider("az", ProviderConfig(api_key="k"))
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", BASE + "/")
    configs = providers_from_env(load_adapters(), {"AZURE_OPENAI_API_KEY": "k-env"})
    env_provider = AzureOpenAIProvider("azure", configs["azure"])
    call = env_provider.build_request(request(), "d")
    assert call.url.startswith(f"{BASE}/openai/deployments/d/") and call.headers["api-key"] == "k-env"


def test_azure_completion_is_relayed_unchanged() -> None:
    raw = (FIXTURES / "chat_completion.json").read_bytes()
    result = provider().parse_response(raw, "my-gpt4o")
    assert result.raw == raw and result.usage.total_tokens == 28
    assert result.body["prompt_filter_results"][0]["prompt_index"] == 0


def test_azure_stream_with_filter_only_chunks() -> None:
    parser = provider().stream_parser(request(stream=True), "d")
    chunks = []
    for event in SSEReader().feed((FIXTURES / "stream.sse").read_bytes()):
        chunks.extend(parser.feed(event))
    assert parser.close() == []
    assert chunks[0].data["choices"] == [] and "prompt_filter_results" in chunks[0].data
    assert not chunks[0].has_content
    assert "".join(c.data["choices"][0]["delta"].get("content") or "" for c in chunks if c.data["choices"]) == "Hello"
    assert chunks[-1].data["usage"]["total_tokens"] == 20


@pytest.mark.parametrize("case", json.loads((FIXTURES / "errors.json").read_text()), ids=lambda c: c["code"])
def test_error_mapping(case: dict[str, Any]) -> None:
    error = provider().map_error(case["status"], orjson.dumps(case["body"]), case["headers"])
    assert isinstance(error, UpstreamHTTPError)
    assert (error.http_status, error.code) == (case["gateway_status"], case["code"])
    assert error.message == case["body"]["error"]["message"]
    if case["status"] == 429:
        assert error.retry_after == 6.0 and error.retryable


@pytest.fixture(scope="module")
def azure_stack() -> Iterator[Stack]:
    with UpstreamThread([upstream.install]) as thread:
        settings = {
            "auth": {"keys": [KEY]},
            "providers": {
                "azure": {"api_key": upstream.API_KEY, "base_url": thread.url},
                "entra": {"type": "azure", "azure_ad_token": upstream.AD_TOKEN, "base_url": thread.url},
                "badkey": {"type": "azure", "api_key": "wrong", "base_url": thread.url},
                "preview": {
                    "type": "azure",
                    "api_key": upstream.API_KEY,
                    "base_url": thread.url,
                    "api_version": "2025-04-01-preview",
                },
            },
            "logging": {"request_log": False},
        }
        with GatewayThread(settings) as gateway:
            yield Stack(gateway, thread)


@pytest.fixture
def client(azure_stack: Stack) -> Iterator[openai.OpenAI]:
    azure_stack.upstream.reset()
    yield openai.OpenAI(base_url=azure_stack.gateway.url + "/v1", api_key=KEY, max_retries=0)
    azure_stack.upstream.reset()


def test_gateway_entra_token_and_api_version(client: openai.OpenAI, azure_stack: Stack) -> None:
    messages: Any = [{"role": "user", "content": "Hi"}]
    reply = client.chat.completions.create(model="entra/gpt4o-eu", messages=messages)
    assert reply.choices[0].message.content == "Echo from gpt4o-eu: Hi"
    seen = azure_stack.upstream.requests[-1]
    assert seen["path"] == "/openai/deployments/gpt4o-eu/chat/completions"
    assert seen["query"] == {"api-version": DEFAULT_API_VERSION}
    assert seen["headers"]["Authorization"] == f"Bearer {upstream.AD_TOKEN}"
    client.chat.completions.create(model="preview/d1", messages=messages)
    assert azure_stack.upstream.requests[-1]["query"] == {"api-version": "2025-04-01-preview"}


def test_gateway_maps_an_azure_key_rejection_to_401(client: openai.OpenAI) -> None:
    with pytest.raises(openai.AuthenticationError, match="Access denied"):
        client.chat.completions.create(model="badkey/d", messages=[{"role": "user", "content": "Hi"}])


def test_gateway_drops_what_azure_rejects_and_says_so(azure_stack: Stack) -> None:
    body = {"model": "azure/d", "messages": [{"role": "user", "content": "Hi"}], "min_p": 0.1, "temperature": 0}
    answer = azure_stack.post("/v1/chat/completions", body)
    assert answer.status == 200 and answer.headers["x-portico-dropped-params"] == "min_p"
    sent = azure_stack.upstream.requests[-1]["body"]
    assert "min_p" not in sent and sent["temperature"] == 0 and sent["model"] == "d"
