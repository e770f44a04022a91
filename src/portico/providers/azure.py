"""Azure OpenAI: OpenAI's chat body and answers, at a deployment URL with Azure's own auth and `api-version`.

Why a subclass and not a `Flavor` row: only the URL (`{base}/openai/deployments/{deployment}/chat/completions
?api-version=...`) and the auth header differ, and both depend on per-provider options; body, streaming (including
Azure's content-filter chunks with empty `choices`) and the OpenAI error envelope are `OpenAICompatibleProvider`'s.

The gateway model is `azure/<deployment>`; the deployment also goes out as `model`, which Azure ignores.
Auth, first match wins: a per-request key (`api-key`), the `azure_ad_token` option (an Entra ID bearer token),
the configured `api_key` (`api-key`). `base_url` is the resource endpoint (`https://<resource>.openai.azure.com`,
else AZURE_OPENAI_ENDPOINT); `api_version` defaults to the latest GA version of the deployments API.
"""

from __future__ import annotations

import dataclasses
import os
from urllib.parse import quote

from portico.config.load import ConfigError
from portico.config.schema import AdapterOptions, ProviderConfig
from portico.core.types import ChatRequest
from portico.providers.base import HttpCall
from portico.providers.openai_compatible import VLLM_ONLY_PARAMS, Flavor, OpenAICompatibleProvider
from portico.providers.registry import Register, hookimpl

DEFAULT_API_VERSION = "2024-10-21"
"""The latest GA `api-version` of the deployments (data-plane inference) API. Newer features such as
`reasoning_effort` on o-series deployments need a newer (preview) version, set with the `api_version` option."""

AZURE = Flavor(
    base_url=None,
    env_key="AZURE_OPENAI_API_KEY",
    auth_header="api-key",
    auth_prefix="",
    unsupported=VLLM_ONLY_PARAMS | {"thinking"},
)
"""Azure answers 400 to parameters it does not know, so vLLM's extras and `thinking` are dropped (and listed)."""


class AzureOpenAIProvider(OpenAICompatibleProvider):
    kind = "azure"

    def __init__(self, name: str, config: ProviderConfig) -> None:
        super().__init__(name, config, flavor=AZURE)
        self.base_url = (self.base_url or os.environ.get("AZURE_OPENAI_ENDPOINT", "")).rstrip("/")
        if not self.base_url:
            raise ConfigError(
                [f"providers.{name}.base_url: set the resource endpoint (https://<resource>.openai.azure.com)"]
            )
        options = config.options
        self.api_version = str(options.get("api_version") or DEFAULT_API_VERSION)
        token = options.get("azure_ad_token")
        self._ad_token = str(token) if token else None
        self._query = "?api-version=" + quote(self.api_version, safe="")

    def headers(self, request: ChatRequest) -> dict[str, str]:
        headers = dict(super().headers(request))
        per_request = request.credentials is not None and bool(request.credentials.api_key)
        if self._ad_token and not per_request:
            headers.pop("api-key", None)
            headers["Authorization"] = f"Bearer {self._ad_token}"
        return headers

    def build_request(self, request: ChatRequest, model: str) -> HttpCall:
        call = super().build_request(request, model)
        return dataclasses.replace(call, url=self.endpoint_url(request, model, "/chat/completions"))

    def endpoint_url(self, request: ChatRequest, model: str, path: str) -> str:
        """Every Azure OpenAI operation sits under its deployment: chat, and `/embeddings` for embeddings."""
        base = self.url_base(request).removesuffix("/openai")
        return f"{base}/openai/deployments/{quote(model, safe='')}{path}{self._query}"


class AzureOptions(AdapterOptions):
    api_version: str = DEFAULT_API_VERSION
    azure_ad_token: str | None = None


@hookimpl
def register_providers(register: Register) -> None:
    register("azure", AzureOpenAIProvider, env_key=AZURE.env_key, options=AzureOptions)
