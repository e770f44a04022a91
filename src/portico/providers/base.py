"""The provider seam: what every adapter implements, and the shared I/O around its pure translation methods.

An adapter translates and nothing else: `build_request`, `parse_response`, `stream_parser` and `map_error` do no
I/O, so their tests are plain input and output. `complete` and `stream` (defined once, here) move bytes through
the one shared `Transport`.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

import orjson

from portico.config.schema import ProviderConfig
from portico.core.embeddings import EmbeddingRequest, EmbeddingResult, RerankRequest, RerankResult
from portico.core.errors import ProviderError, RequestError, UpstreamHTTPError, UpstreamProtocolError
from portico.core.types import ChatChunk, ChatRequest, ChatResult, JSONObject, LastBatch, ProviderCredentials
from portico.providers.failure import call_secrets, clean_error
from portico.providers.transport import Limits, Transport, UpstreamEvent

Framing = Literal["json", "sse", "aws-eventstream"]
# What a translation method raises when an upstream answer does not have the shape its API documents.
_PARSER_BUGS = (ValueError, KeyError, TypeError, IndexError, AttributeError)
T = TypeVar("T")


@dataclass(slots=True)
class HttpCall:
    """Everything needed to send one upstream request; built without I/O so tests can inspect it."""

    url: str
    headers: Mapping[str, str]
    body: bytes
    method: str = "POST"
    framing: Framing = "json"
    dropped_params: tuple[str, ...] = ()


@dataclass(slots=True)
class CallOptions:
    """Per-attempt limits chosen by the routing layer; each bound is enforced once, in the transport.

    `timeout_s`: the whole attempt, from sending to the last byte (a stream's every byte too).
    `connect_timeout_s`: opening the connection.
    `first_event_timeout_s`: streams only, from sending to the first token (the first chunk with content);
    None: the provider's `first_token_timeout`, else `timeout_s`.
    `idle_timeout_s`: streams only, the longest silence between two reads once tokens flow; None: the
    provider's `idle_timeout`, else 60 s (never more than `timeout_s`).
    """

    timeout_s: float
    connect_timeout_s: float = 10.0
    first_event_timeout_s: float | None = None
    idle_timeout_s: float | None = None

    @classmethod
    def for_attempt(cls, config: ProviderConfig, attempt_timeout_s: float | None, stream: bool) -> CallOptions:
        """The routing `timeout` of an attempt: a completion's whole call; a stream's wait for its first token
        (a stream that has started is bounded by the provider's total and idle timeouts)."""
        if attempt_timeout_s is None:
            return cls(config.timeout, config.connect_timeout, config.first_token_timeout, config.idle_timeout)
        connect = min(config.connect_timeout, attempt_timeout_s)
        if stream:
            return cls(config.timeout, connect, attempt_timeout_s, config.idle_timeout)
        return cls(attempt_timeout_s, connect)


class StreamParser(Protocol):
    """Turns a provider's stream events into OpenAI chunks; holds the little state a stream needs."""

    def feed(self, event: UpstreamEvent) -> list[ChatChunk]: ...

    def close(self) -> list[ChatChunk]:
        """Called at the end of the upstream body; raises `ProviderError` if the stream ended early."""
        ...


@dataclass(slots=True)
class StreamStart:
    """What the gateway learns when an upstream stream opens (before any chunk)."""

    dropped_params: tuple[str, ...] = ()
    relay: bool = False
    """The caller sends the chunks' `raw` frames on unread: a parser that `relays` may yield blocks of events."""


class Provider(abc.ABC):
    """One configured upstream (`name`) served by one adapter (`kind`); `mock` implements this directly."""

    kind: str = ""
    default_base_url: str | None = None

    def __init__(self, name: str, config: ProviderConfig) -> None:
        self.name = name
        self.config = config
        self.base_url = (config.base_url or self.default_base_url or "").rstrip("/")
        self.limits = Limits(
            config.first_token_timeout, config.idle_timeout, config.max_response_bytes, config.max_event_bytes
        )
        self.default_options = CallOptions.for_attempt(config, None, stream=False)
        """An attempt's limits when routing sets no timeout (the same for streams): built once, read-only."""

    def api_key(self, request: ChatRequest) -> str | None:
        creds = request.credentials
        if creds is not None and creds.api_key:
            return creds.api_key
        return self.config.api_key

    def url_base(self, request: ChatRequest) -> str:
        creds = request.credentials
        if creds is not None and creds.base_url:
            return creds.base_url.rstrip("/")
        return self.base_url

    def extra_headers(self, request: ChatRequest) -> dict[str, str]:
        headers = dict(self.config.headers)
        if request.forward_headers:
            headers.update(request.forward_headers)
        if request.credentials is not None:
            headers.update(request.credentials.extra_headers)
        return headers

    def models(self) -> list[str]:
        return list(self.config.models)

    @abc.abstractmethod
    async def complete(
        self, request: ChatRequest, model: str, transport: Transport, options: CallOptions
    ) -> ChatResult: ...

    @abc.abstractmethod
    def stream(
        self, request: ChatRequest, model: str, transport: Transport, options: CallOptions, start: StreamStart
    ) -> AsyncIterator[list[ChatChunk]]:
        """Yield batches of chunks as they arrive (one batch per upstream read, never buffered across reads)."""

    max_embed_batch: int = 2048
    """Most texts one upstream embeddings call takes (OpenAI's limit by default); the pipeline splits beyond."""

    async def embed(
        self, request: EmbeddingRequest, model: str, transport: Transport, options: CallOptions
    ) -> EmbeddingResult:
        """Optional capability: adapters with an embeddings API override this. The default is a clear 400, not a
        guessed URL's 404 from the upstream."""
        raise RequestError(
            f"provider {self.name!r} does not offer embeddings", code="embeddings_not_supported", param="model"
        )

    async def rerank(
        self, request: RerankRequest, model: str, transport: Transport, options: CallOptions
    ) -> RerankResult:
        """Optional capability, like `embed`: scores in [0, 1], best first."""
        raise RequestError(f"provider {self.name!r} does not offer rerank", code="rerank_not_supported", param="model")


class HttpProvider(Provider):
    """An upstream reached over HTTP: subclasses only translate; sending and framing are done here, once."""

    @abc.abstractmethod
    def build_request(self, request: ChatRequest, model: str) -> HttpCall: ...

    @abc.abstractmethod
    def parse_response(self, body: bytes, model: str) -> ChatResult: ...

    @abc.abstractmethod
    def stream_parser(self, request: ChatRequest, model: str) -> StreamParser: ...

    def map_error(self, status: int, body: bytes, headers: Mapping[str, str]) -> ProviderError:
        """Default: the OpenAI error envelope `{"error": {"message", "type", "code"}}`; adapters override."""
        message, code = _openai_error_text(body)
        return UpstreamHTTPError(
            message or f"upstream returned HTTP {status}",
            provider=self.name,
            upstream_status=status,
            retry_after=parse_retry_after(headers),
            code=code,
            body=_json_or_none(body),
        )

    async def complete(
        self, request: ChatRequest, model: str, transport: Transport, options: CallOptions
    ) -> ChatResult:
        call = self.build_request(request, model)
        try:
            status, headers, body = await transport.send(
                call.method, call.url, call.headers, call.body, options, self.name, self.limits
            )
        except ProviderError as error:
            raise self._failed(error, call, request) from None
        failure: ProviderError
        if status < 400:
            try:
                result = self.parse_response(body, model)
            except ProviderError as error:
                failure = error
            except _PARSER_BUGS as exc:
                failure = self._malformed(exc, "response")
            else:
                result.provider = self.name
                result.dropped_params = call.dropped_params
                return result
        else:
            failure = self.map_error(status, body, headers)
        body = b""  # the raised error's traceback keeps this frame alive: not the whole answer with it
        raise self._failed(failure, call, request)

    async def stream(
        self, request: ChatRequest, model: str, transport: Transport, options: CallOptions, start: StreamStart
    ) -> AsyncIterator[list[ChatChunk]]:
        call = self.build_request(request, model)
        start.dropped_params = call.dropped_params
        parser = self.stream_parser(request, model)
        relay = start.relay and call.framing == "sse" and getattr(parser, "relays", False)
        framing = "sse-relay" if relay else call.framing
        try:
            async with transport.open_stream(
                call.method, call.url, call.headers, call.body, options, self.name, framing, self.limits
            ) as upstream:
                if upstream.status >= 400:
                    raise self.map_error(upstream.status, await upstream.read(), upstream.headers)
                waiting = True  # for the first token, whose deadline the transport keeps until told
                try:  # one try around the loop: entering it per event would cost every chunk of every stream
                    async for events in upstream.events():
                        batch: list[ChatChunk] = []
                        for event in events:
                            batch.extend(parser.feed(event))
                        if batch:
                            if waiting and any(chunk.has_content for chunk in batch):
                                upstream.first_token()
                                waiting = False
                            if relay and getattr(parser, "done", False):  # the upstream's end came in this read
                                batch = LastBatch(batch)
                            yield batch
                    tail = parser.close()
                except _PARSER_BUGS as exc:
                    raise self._malformed(exc, "stream event") from None
        except ProviderError as error:
            raise self._failed(error, call, request) from None
        if tail:
            yield tail

    async def send_json(
        self, call: HttpCall, transport: Transport, options: CallOptions, credentials: ProviderCredentials | None
    ) -> tuple[JSONObject, Mapping[str, str]]:
        """One JSON exchange besides chat (embeddings, rerank): the answer object and its headers, or the
        adapter's mapped error, cleaned of every secret the call sent exactly like a chat call's."""
        view = credentials_view(credentials)
        try:
            status, headers, body = await transport.send(
                call.method, call.url, call.headers, call.body, options, self.name, self.limits
            )
        except ProviderError as error:
            raise self._failed(error, call, view) from None
        if status >= 400:
            failure = self.map_error(status, body, headers)
            body = b""
            raise self._failed(failure, call, view)
        try:
            return decode_json_object(body, self.name), headers
        except ProviderError as error:
            raise self._failed(error, call, view) from None

    def parse_guarded(self, parse: Callable[[JSONObject], T], data: JSONObject, what: str) -> T:
        """`parse(data)`, with a parser that chokes on the answer reported as the upstream's protocol error."""
        try:
            return parse(data)
        except _PARSER_BUGS as exc:
            raise self._malformed(exc, what) from None

    def _failed(self, error: ProviderError, call: HttpCall, request: ChatRequest) -> ProviderError:
        """Every error leaving the provider: no secret the call sent, no upstream body, no frames holding one."""
        clean_error(error, call_secrets(call.headers, call.url, self.api_key(request)))
        return error.with_traceback(None)

    def _malformed(self, exc: Exception, what: str) -> UpstreamProtocolError:
        """A parser that choked on an upstream answer: the answer was not the provider's API."""
        return UpstreamProtocolError(
            f"{self.name} returned a {what} that is not valid for its API ({type(exc).__name__})",
            provider=self.name,
        )


def credentials_view(credentials: ProviderCredentials | None) -> ChatRequest:
    """A bodiless request carrying only `credentials`: what `api_key`, `url_base` and `extra_headers` read, so
    embeddings and rerank authenticate through the same methods as chat."""
    return ChatRequest(model="", body={}, credentials=credentials)


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after") or headers.get("Retry-After")
    if value is None:
        ms = headers.get("retry-after-ms")
        try:
            return float(ms) / 1000 if ms is not None else None
        except ValueError:
            return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime
        from time import time

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time())
        except (TypeError, ValueError):
            return None


def _json_or_none(body: bytes) -> Any:
    try:
        return orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None


def _openai_error_text(body: bytes) -> tuple[str, str | None]:
    data = _json_or_none(body)
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            message = err.get("message") or err.get("detail") or ""
            code = err.get("code") or err.get("type")
            if isinstance(message, list):  # FastAPI/vLLM 422 detail lists
                message = "; ".join(str(m.get("msg", m)) if isinstance(m, dict) else str(m) for m in message)
            return str(message), str(code) if code is not None else None
        if isinstance(err, str):
            return err, None
    text = body[:500].decode("utf-8", "replace").strip()
    return text, None


def decode_json_object(body: bytes, provider: str) -> JSONObject:
    """Decode an upstream body that must be a JSON object, or raise a protocol error naming the provider."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise UpstreamProtocolError(f"{provider} returned invalid JSON", provider=provider) from None
    if not isinstance(data, dict):
        raise UpstreamProtocolError(
            f"{provider} returned a JSON {type(data).__name__}, not an object", provider=provider
        )
    return data


def decode_stream_event(event: UpstreamEvent, provider: str) -> JSONObject | None:
    """One SSE event's JSON object; `None` for keep-alives and non-object payloads, a protocol error for garbage."""
    if not event.data.strip():
        return None
    try:
        data = orjson.loads(event.data)
    except orjson.JSONDecodeError:
        raise UpstreamProtocolError(f"{provider} sent an invalid stream event", provider=provider) from None
    return data if isinstance(data, dict) else None


def add_turn(turns: list[JSONObject], role: str, blocks: list[JSONObject]) -> None:
    """Append a turn of content blocks, merged into the previous one when it has the same role: the Messages-style
    APIs (Anthropic, Bedrock Converse) require user and assistant turns to alternate."""
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(blocks)
    else:
        turns.append({"role": role, "content": blocks})


def tool_call_arguments(function: Mapping[str, Any], where: str, provider: str) -> JSONObject:
    """An assistant tool call's `arguments` (a JSON string in OpenAI's shape) as the object native APIs require.

    Empty arguments mean `{}`; anything that is not a JSON object is the client's error (400), said before the
    provider would refuse it less clearly."""
    raw = function.get("arguments")
    if isinstance(raw, dict):
        return raw
    try:
        value = orjson.loads(raw) if raw and str(raw).strip() else {}
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise RequestError(
            f"{where}: the arguments of {function.get('name')!r} must be a JSON object for {provider}.",
            code="invalid_tool_arguments",
            param=where,
        )
    return value
