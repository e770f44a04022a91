"""The adapter for every OpenAI-shaped chat API: the body goes out as the service takes it, answers come back as sent.

A family member (openai, groq, vllm, ...) is a `Flavor` row in `openai_family.py`, not code. A hosted service's row
names what it accepts (`openai_params.py`): the rest is dropped and listed, or refused when its loss would change
the answer. Self-hosted servers (vLLM, Ollama, ...) get every key verbatim.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import orjson

from portico.config.schema import ProviderConfig
from portico.core.embeddings import EmbeddingRequest, EmbeddingResult, RerankRequest, RerankResult
from portico.core.errors import UpstreamProtocolError
from portico.core.types import ChatChunk, ChatRequest, ChatResult, JSONObject
from portico.providers import openai_embed
from portico.providers.base import (
    CallOptions,
    HttpCall,
    HttpProvider,
    StreamParser,
    credentials_view,
    decode_json_object,
)
from portico.providers.framing import RELAYED
from portico.providers.openai_params import Accepts
from portico.providers.openai_relay import DONE, plain_block, split_block
from portico.providers.transport import Transport, UpstreamEvent

VLLM_ONLY_PARAMS = frozenset(
    {
        "use_beam_search",
        "min_p",
        "repetition_penalty",
        "length_penalty",
        "stop_token_ids",
        "include_stop_str_in_output",
        "ignore_eos",
        "min_tokens",
        "skip_special_tokens",
        "spaces_between_special_tokens",
        "truncate_prompt_tokens",
        "prompt_logprobs",
        "allowed_token_ids",
        "bad_words",
        "echo",
        "add_generation_prompt",
        "continue_final_message",
        "add_special_tokens",
        "documents",
        "chat_template",
        "chat_template_kwargs",
        "mm_processor_kwargs",
        "structured_outputs",
        "priority",
        "request_id",
        "return_tokens_as_token_ids",
        "return_token_ids",
        "cache_salt",
        "kv_transfer_params",
        "vllm_xargs",
        "repetition_detection",
        "include_reasoning",
        "top_k",
    }
)
"""Parameters only vLLM-style servers accept; OpenAI itself answers 400 to any of them (CHECKLIST AMB-57)."""


@dataclass(frozen=True, slots=True)
class Flavor:
    """One OpenAI-compatible service: where it lives, how it authenticates, what it does not accept."""

    base_url: str | None
    env_key: str | None = None
    auth_header: str = "Authorization"
    auth_prefix: str = "Bearer "
    unsupported: frozenset[str] = frozenset()
    """Keys dropped (and listed) for a service without an `accepts` list (Azure)."""
    accepts: Accepts | None = None
    """What the service accepts; None: everything the client sent goes through verbatim."""
    stream_usage: bool = True
    """Accepts `stream_options.include_usage`; the gateway then always asks, to account every stream."""
    key_required: bool = True
    embeddings: bool = True
    """Serves `/embeddings`; False: a clear 400 instead of the upstream's 404."""
    rerank: bool = False
    """Serves `/rerank` (vLLM, TEI, Jina, Together); hosted OpenAI-style APIs mostly do not."""


class OpenAICompatibleProvider(HttpProvider):
    kind = "openai"
    flavor = Flavor(base_url="https://api.openai.com/v1", env_key="OPENAI_API_KEY")

    def __init__(self, name: str, config: ProviderConfig, flavor: Flavor | None = None) -> None:
        if flavor is not None:
            self.flavor = flavor
        self.default_base_url = self.flavor.base_url
        super().__init__(name, config)
        self._url_suffix = "/chat/completions"
        self._static_headers = {"Content-Type": "application/json", **config.headers}
        self._own_url = self.base_url + self._url_suffix
        own_headers = self._with_key(dict(self._static_headers), config.api_key)
        self._own_headers: Mapping[str, str] = MappingProxyType(own_headers)
        """URL and headers of every call that brings no credentials or headers of its own, built once."""

    def headers(self, request: ChatRequest) -> Mapping[str, str]:
        if request.credentials is None and not request.forward_headers:
            return self._own_headers
        headers = dict(self._static_headers)
        headers.update(self.extra_headers(request))
        return self._with_key(headers, self.api_key(request))

    def _with_key(self, headers: dict[str, str], key: str | None) -> dict[str, str]:
        if key:
            headers[self.flavor.auth_header] = self.flavor.auth_prefix + key
        return headers

    def build_request(self, request: ChatRequest, model: str) -> HttpCall:
        body = dict(request.body)
        dropped: tuple[str, ...] = ()
        accepts = self.flavor.accepts
        if accepts is not None:
            if not accepts.fast.issuperset(body):  # the common request: every key accepted, nothing to do
                dropped = accepts.fit(body, self.name)
        elif self.flavor.unsupported and (found := self.flavor.unsupported.intersection(body)):
            for param in found:
                del body[param]
            dropped = tuple(sorted(found))
        body["model"] = model
        if request.stream:
            body["stream"] = True
            if self.flavor.stream_usage:
                options = body.get("stream_options")
                body["stream_options"] = {**options, "include_usage": True} if options else {"include_usage": True}
        url = self._own_url if request.credentials is None else self.url_base(request) + self._url_suffix
        return HttpCall(url, self.headers(request), orjson.dumps(body), "POST", "sse", dropped)

    def parse_response(self, body: bytes, model: str) -> ChatResult:
        try:
            return ChatResult.relayed(body, model)
        except ValueError:
            pass  # decoded the slow way below, to say exactly what is wrong with it
        data = decode_json_object(body, self.name)
        if not isinstance(data.get("choices"), list):
            raise UpstreamProtocolError(f"{self.name} returned a completion without choices", provider=self.name)
        return ChatResult(body=data, raw=body, model=str(data.get("model") or model))

    def stream_parser(self, request: ChatRequest, model: str) -> StreamParser:
        return OpenAIStreamParser(self.name, not request.include_usage)

    def endpoint_url(self, request: ChatRequest, model: str, path: str) -> str:
        """The URL of a non-chat endpoint (`/embeddings`, `/rerank`) next to `/chat/completions`."""
        return self.url_base(request) + path

    async def embed(
        self, request: EmbeddingRequest, model: str, transport: Transport, options: CallOptions
    ) -> EmbeddingResult:
        if not self.flavor.embeddings:
            return await super().embed(request, model, transport, options)
        view = credentials_view(request.credentials)
        url = self.endpoint_url(view, model, "/embeddings")
        call = HttpCall(url, self.headers(view), openai_embed.embeddings_body(request, model))
        data, _ = await self.send_json(call, transport, options, request.credentials)
        count = len(request.texts)
        return self.parse_guarded(lambda d: openai_embed.parse_embeddings(d, model, count), data, "embeddings answer")

    async def rerank(
        self, request: RerankRequest, model: str, transport: Transport, options: CallOptions
    ) -> RerankResult:
        if not self.flavor.rerank:
            return await super().rerank(request, model, transport, options)
        view = credentials_view(request.credentials)
        url = self.endpoint_url(view, model, "/rerank")
        call = HttpCall(url, self.headers(view), openai_embed.rerank_body(request, model))
        data, _ = await self.send_json(call, transport, options, request.credentials)
        count, top_n = len(request.documents), request.top_n
        return self.parse_guarded(lambda d: openai_embed.parse_rerank(d, count, top_n), data, "rerank answer")


class OpenAIStreamParser:
    """Relays OpenAI chunks with their original bytes, so an unchanged chunk is never encoded twice; given whole
    blocks of events (`relays`: the transport's relaying SSE reader), passes them on as blocks once content flows
    (`openai_relay.py`)."""

    relays = True

    def __init__(self, provider: str, strip_usage: bool = False) -> None:
        self._provider = provider
        self.done = False
        """`[DONE]` was read: nothing follows (`HttpProvider.stream` marks that read's batch the last)."""
        self._flowing = False
        self._strip_usage = strip_usage  # the client did not ask for usage: blocks say so to the relay

    def feed(self, event: UpstreamEvent) -> list[ChatChunk]:
        if event.event is RELAYED:
            block = event.data
            if self._flowing and (plain := plain_block(block, self._strip_usage)) is not None:
                return [plain]
            end = len(block)
            if block.endswith(DONE) and (end == len(DONE) or block[-len(DONE) - 2 : -len(DONE)] == b"\n\n"):
                self.done = True  # the stream's end: the HTTP layer sends its own `[DONE]`
                end -= len(DONE)
            out, self._flowing = split_block(block, self._flowing, self._feed, self._strip_usage, end)
            return out
        return self._feed(event)

    def _feed(self, event: UpstreamEvent) -> list[ChatChunk]:
        data = event.data
        if data == b"[DONE]":
            self.done = True
            return []
        if not data:
            return []
        try:
            chunk = ChatChunk.relayed(data)
        except ValueError:
            raise UpstreamProtocolError(
                f"{self._provider} sent an invalid stream event", provider=self._provider
            ) from None
        if chunk is None:
            return []
        if chunk.is_error:
            raise _stream_error(self._provider, chunk.data)
        return [chunk]

    def close(self) -> list[ChatChunk]:
        if not self.done:
            raise UpstreamProtocolError(
                f"{self._provider} closed the stream before it finished", provider=self._provider
            )
        return []


def _stream_error(provider: str, chunk: JSONObject) -> UpstreamProtocolError:
    err = chunk.get("error")
    message = err.get("message") if isinstance(err, dict) else str(err)
    return UpstreamProtocolError(f"{provider} reported an error mid-stream: {message}", provider=provider)
