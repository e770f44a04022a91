"""AWS Bedrock through the Converse API: `POST /model/{modelId}/converse[-stream]`, SigV4-signed with botocore.

Why native: Bedrock speaks neither OpenAI's body nor its auth, and Converse is the one shape every Bedrock chat
model (Claude, Nova, Llama, Mistral, ...) accepts. The body is translated in `bedrock_request.py`, answers and
errors in `bedrock_stream.py`; this module adds the URL, the auth and the credential lifecycle.

Auth: a configured or per-request `api_key` is a Bedrock API key (Bearer). Otherwise requests are SigV4-signed for
service `bedrock` in `region` (option, else AWS_REGION / AWS_DEFAULT_REGION / the AWS config) with the `aws_*`
options, else botocore's credential chain (optionally a named `profile`) — resolved once here, refreshed by botocore
in a worker thread, so signing itself does no I/O. `base_url` may point elsewhere (a VPC endpoint, a test double);
the signature is still for `bedrock` in `region`. The model id is percent-encoded into the path like the AWS SDKs
do (`:` → `%3A`, inference-profile ARNs' `/` → `%2F`), and the transport sends it byte for byte.
botocore is the optional extra `portico[bedrock]`, imported only when a Bedrock provider is configured.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any
from urllib.parse import quote

import orjson

from portico.config.load import ConfigError
from portico.config.schema import AdapterOptions, ProviderConfig
from portico.core.embeddings import EmbeddingRequest, EmbeddingResult
from portico.core.errors import ProviderError
from portico.core.types import ChatChunk, ChatRequest, ChatResult, JSONObject
from portico.providers import bedrock_embed, bedrock_stream
from portico.providers.base import (
    CallOptions,
    Framing,
    HttpCall,
    HttpProvider,
    StreamParser,
    StreamStart,
    decode_json_object,
)
from portico.providers.base import credentials_view as _view
from portico.providers.bedrock_request import to_converse
from portico.providers.registry import Register, hookimpl
from portico.providers.transport import Transport


class BedrockProvider(HttpProvider):
    kind = "bedrock"

    def __init__(self, name: str, config: ProviderConfig) -> None:
        super().__init__(name, config)
        options = config.options
        botocore = _load_botocore(name)
        session = _Lazy(lambda: _session(botocore, name, options.get("profile")))
        self.region = _region(name, options, session)
        self.base_url = self.base_url or f"https://bedrock-runtime.{self.region}.amazonaws.com"
        credentials = None if config.api_key else _credentials(botocore, name, options, session)
        self._signer = None if credentials is None else SigV4Signer(botocore, self.region, credentials)
        self._static_headers = {"Content-Type": "application/json", **config.headers}

    max_embed_batch = 96
    """Cohere Embed on Bedrock takes 96 texts per call; Titan takes one (the adapter fans those out)."""

    def build_request(self, request: ChatRequest, model: str) -> HttpCall:
        converse, dropped = to_converse(request.body, self.name)
        body = orjson.dumps(converse)
        action = "converse-stream" if request.stream else "converse"
        url = f"{self.url_base(request)}/model/{quote(model, safe='')}/{action}"
        headers = self._signed(request, url, body)
        framing: Framing = "aws-eventstream" if request.stream else "json"
        return HttpCall(url=url, headers=headers, body=body, framing=framing, dropped_params=dropped)

    def _signed(self, request: ChatRequest, url: str, body: bytes) -> dict[str, str]:
        headers = dict(self._static_headers)
        if request.forward_headers or request.credentials is not None:
            headers.update(self.extra_headers(request))
        key = request.credentials.api_key if request.credentials is not None else None
        if key or self._signer is None:
            headers["Authorization"] = f"Bearer {key or self.config.api_key}"
            return headers
        return self._signer.sign(url, headers, body)

    async def embed(
        self, request: EmbeddingRequest, model: str, transport: Transport, options: CallOptions
    ) -> EmbeddingResult:
        """InvokeModel: one call for a Cohere Embed batch, one call per text (bounded fan-out) for Titan."""
        if self._signer is not None:
            await self._signer.refresh()
        if bedrock_embed.is_cohere(model):
            data, headers = await self._invoke(
                model, bedrock_embed.cohere_payload(request), request, transport, options
            )
            count = len(request.texts)
            parse = lambda d: bedrock_embed.parse_cohere(d, headers, model, count)  # noqa: E731
            return self.parse_guarded(parse, data, "embeddings answer")
        gate = asyncio.Semaphore(bedrock_embed.TITAN_CONCURRENCY)

        async def one(text: str) -> tuple[list[float], int]:
            async with gate:
                payload = bedrock_embed.titan_payload(text, request, model)
                data, _ = await self._invoke(model, payload, request, transport, options)
            return self.parse_guarded(bedrock_embed.parse_titan, data, "embeddings answer")

        results = await asyncio.gather(*(one(text) for text in request.texts))
        return EmbeddingResult([vector for vector, _ in results], sum(tokens for _, tokens in results), model)

    async def _invoke(
        self,
        model: str,
        payload: JSONObject,
        request: EmbeddingRequest,
        transport: Transport,
        options: CallOptions,
    ) -> tuple[JSONObject, Mapping[str, str]]:
        view = _view(request.credentials)
        url = f"{self.url_base(view)}/model/{quote(model, safe='')}/invoke"
        body = orjson.dumps(payload)
        call = HttpCall(url=url, headers=self._signed(view, url, body), body=body)
        return await self.send_json(call, transport, options, request.credentials)

    def parse_response(self, body: bytes, model: str) -> ChatResult:
        data = decode_json_object(body, self.name)
        return ChatResult(body=bedrock_stream.completion_from_converse(data, model, self.name), model=model)

    def stream_parser(self, request: ChatRequest, model: str) -> StreamParser:
        return bedrock_stream.ConverseStreamParser(self.name, model)

    def map_error(self, status: int, body: bytes, headers: Mapping[str, str]) -> ProviderError:
        return bedrock_stream.http_error(self.name, status, body, headers)

    async def complete(
        self, request: ChatRequest, model: str, transport: Transport, options: CallOptions
    ) -> ChatResult:
        if self._signer is not None:
            await self._signer.refresh()
        return await super().complete(request, model, transport, options)

    async def stream(
        self, request: ChatRequest, model: str, transport: Transport, options: CallOptions, start: StreamStart
    ) -> AsyncIterator[list[ChatChunk]]:
        if self._signer is not None:
            await self._signer.refresh()
        inner = super().stream(request, model, transport, options, start)
        try:
            async for batch in inner:
                yield batch
        finally:  # release the upstream connection now, not when the inner generator is collected
            aclose = getattr(inner, "aclose", None)
            if aclose is not None:
                await aclose()


class SigV4Signer:
    """botocore's SigV4 for service `bedrock`; signing is CPU only, credential refreshes run in a worker thread."""

    def __init__(self, botocore: Any, region: str, credentials: Any) -> None:
        self.region = region
        self._auth = botocore.auth.SigV4Auth
        self._request = botocore.awsrequest.AWSRequest
        self._credentials = credentials

    async def refresh(self) -> None:
        """Refreshable credentials (SSO, roles, IMDS) near expiry are refreshed here, never inside `sign`."""
        needed = getattr(self._credentials, "refresh_needed", None)
        if needed is not None and needed():
            await asyncio.to_thread(self._credentials.get_frozen_credentials)

    def sign(self, url: str, headers: Mapping[str, str], body: bytes) -> dict[str, str]:
        request = self._request(method="POST", url=url, data=body, headers=dict(headers))
        self._auth(self._credentials.get_frozen_credentials(), "bedrock", self.region).add_auth(request)
        return {str(k): str(v) for k, v in request.headers.items()}


class _Lazy:
    """A botocore session is built only if region or credentials must come from the AWS configuration."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self._value: Any = None

    def get(self) -> Any:
        if self._value is None:
            self._value = self._make()
        return self._value


def _load_botocore(name: str) -> Any:
    try:
        import botocore.auth
        import botocore.awsrequest
        import botocore.credentials
        import botocore.session
    except ImportError:
        raise ConfigError(
            [f"providers.{name}: the bedrock adapter needs botocore: pip install 'portico[bedrock]'"]
        ) from None
    return botocore


def _session(botocore: Any, name: str, profile: Any) -> Any:
    try:
        return botocore.session.Session(profile=str(profile) if profile else None)
    except Exception as exc:  # botocore raises ProfileNotFound and friends
        raise ConfigError([f"providers.{name}.profile: {exc}"]) from None


def _region(name: str, options: Mapping[str, Any], session: _Lazy) -> str:
    region = options.get("region") or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    region = region or session.get().get_config_variable("region")
    if not region:
        raise ConfigError([f"providers.{name}.region: no AWS region; set it here or in AWS_REGION"])
    return str(region)


def _credentials(botocore: Any, name: str, options: Mapping[str, Any], session: _Lazy) -> Any:
    key, secret = options.get("aws_access_key_id"), options.get("aws_secret_access_key")
    if key or secret:
        if not (key and secret):
            raise ConfigError([f"providers.{name}: set both aws_access_key_id and aws_secret_access_key"])
        return botocore.credentials.Credentials(str(key), str(secret), options.get("aws_session_token"))
    credentials = session.get().get_credentials()
    if credentials is None:
        raise ConfigError(
            [
                f"providers.{name}: no AWS credentials: set aws_access_key_id/aws_secret_access_key or api_key "
                "(a Bedrock API key), or configure the AWS credential chain (environment, ~/.aws, SSO, role)"
            ]
        )
    return credentials


@hookimpl
def register_providers(register: Register) -> None:
    # No env_key: an AWS key id alone does not make a usable provider (SigV4 also needs the secret and a region), and
    # AWS variables set for other tools must not add a provider that then fails the gateway's startup.
    register("bedrock", BedrockProvider, env_key=None, options=BedrockOptions)


class BedrockOptions(AdapterOptions):
    """Default region: $AWS_REGION / $AWS_DEFAULT_REGION, then the profile's; credentials: botocore's chain."""

    region: str | None = None
    profile: str | None = None
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    aws_session_token: str | None = None
