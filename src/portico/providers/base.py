"""The provider seam: what every adapter implements, and the shared I/O around its pure translation methods.

An adapter translates and nothing else: `build_request`, `parse_response`, `stream_parser` and `map_error` do no
I/O, so their tests are plain input and output. `complete` and `stream` (defined once, here) move bytes through
the one shared `Transport`.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import orjson

from portico.config.schema import ProviderConfig
from portico.core.errors import ProviderError, RequestError, UpstreamHTTPError, UpstreamProtocolError
from portico.core.types import ChatChunk, ChatRequest, ChatResult, JSONObject
from portico.providers.transport import Transport, UpstreamEvent

Framing = Literal["json", "sse", "aws-eventstream"]


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
    """Per-attempt limits chosen by the routing layer."""

    timeout_s: float
    connect_timeout_s: float = 10.0
    first_event_timeout_s: float | None = None


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
    meta: dict[str, Any] = field(default_factory=dict)


class Provider(abc.ABC):
    """One configured upstream (`name`) served by one adapter (`kind`); `mock` implements this directly."""

    kind: str = ""
    default_base_url: str | None = None

    def __init__(self, name: str, config: ProviderConfig) -> None:
        self.name = name
        self.config = config
        self.base_url = (config.base_url or self.default_base_url or "").rstrip("/")

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
        status, headers, body = await transport.send(call.method, call.url, call.headers, call.body, options, self.name)
        if status >= 400:
            raise self.map_error(status, body, headers)
        try:
            result = self.parse_response(body, model)
        except ProviderError:
            raise
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise UpstreamProtocolError(
                f"{self.name} returned a response that is not a valid completion ({type(exc).__name__})",
                provider=self.name,
            ) from exc
        result.provider = self.name
        result.dropped_params = call.dropped_params
        return result

    async def stream(
        self, request: ChatRequest, model: str, transport: Transport, options: CallOptions, start: StreamStart
    ) -> AsyncIterator[list[ChatChunk]]:
        call = self.build_request(request, model)
        start.dropped_params = call.dropped_params
        parser = self.stream_parser(request, model)
        async with transport.open_stream(
            call.method, call.url, call.headers, call.body, options, self.name, call.framing
        ) as upstream:
            if upstream.status >= 400:
                raise self.map_error(upstream.status, await upstream.read(), upstream.headers)
            async for events in upstream.events():
                batch: list[ChatChunk] = []
                for event in events:
                    batch.extend(parser.feed(event))
                if batch:
                    yield batch
        tail = parser.close()
        if tail:
            yield tail


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
    except orjson.JSONDecodeError as exc:
        raise UpstreamProtocolError(f"{provider} returned invalid JSON", provider=provider) from exc
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
    except orjson.JSONDecodeError as exc:
        raise UpstreamProtocolError(f"{provider} sent an invalid stream event", provider=provider) from exc
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
