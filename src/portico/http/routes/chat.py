"""POST /v1/chat/completions(/), /v2/router/chat/completions and /v2/gateway/chat/completions: one raw ASGI handler.

Parse → authenticate → validate → `Gateway.chat()`/`stream()` → reply; every outcome, errors included, is
summarised for the call record once the response has been sent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import orjson

from portico.core.errors import MalformedJSON, PorticoError, RequestError
from portico.core.ids import time_ordered_id
from portico.core.types import ChatRequest, ChatResult, Dialect
from portico.http.asgi import (
    ClientDisconnected,
    DisconnectWatches,
    Message,
    Receive,
    Scope,
    Send,
    header_map,
    read_body,
    send_json,
)
from portico.http.auth import Authenticator
from portico.http.errors import error_body, error_headers, internal_error, status_for
from portico.http.sse import write_stream
from portico.observability.bodies import HEADER as BODIES_HEADER
from portico.observability.bodies import BadBodyMode, BodyCapture, BodyPolicy
from portico.observability.trace_context import finish_reasons_of, tap_finish_reasons, traced, traceparent_of
from portico.pipeline.gateway import Gateway
from portico.pipeline.served import Served
from portico.wire.convert import build_request, check_rules, validate_body
from portico.wire.portkey import has_portkey_headers, read_portkey_headers
from portico.wire.portkey_config import StoredConfigs, VirtualKeys
from portico.wire.portkey_dialect import apply_portkey_headers, qualify

log = logging.getLogger("portico.http")


@dataclass(slots=True)
class Exchange:
    """One request/response as the call record sees it."""

    path: str
    request_id: str
    started: float
    dialect: Dialect = "openai"
    request: ChatRequest | None = None
    served: Served | None = None
    status: int = 200
    error: PorticoError | None = None
    overhead_ms: float = 0.0
    finished: float = 0.0
    disconnected: bool = False
    portkey: bool = False
    """The request spoke Portkey (`x-portkey-*` headers): its answer carries Portkey's response headers too."""
    cost_usd: float | None = None
    """Set when a JSON answer is sent (its `x-portico-cost-usd` header); the call record reuses it."""
    recorded: bool = True
    """False for an answer that called no model and must leave no record (a deployment's mock or config)."""
    finish_reasons: list[str] | None = None
    """Each choice's finish reason, noted only when tracing is on (the request span's)."""
    bodies: BodyCapture | None = None
    """The request and response bodies as they passed, when the call log keeps them (`logging.bodies`)."""


OnDone = Callable[[Exchange], None]
PriceServed = Callable[[Served], float | None]


class ChatEndpoint:
    def __init__(
        self,
        gateway: Gateway,
        auth: Authenticator,
        *,
        max_body_bytes: int,
        on_done: OnDone,
        custom_host_allowlist: Sequence[str] = (),
        virtual_keys: VirtualKeys = lambda _: None,
        stored_configs: StoredConfigs = lambda _: None,
        is_provider: Callable[[str], bool] = lambda _: False,
        price: PriceServed | None = None,
        tracing: bool = False,
        bodies: BodyPolicy | None = None,
    ) -> None:
        self.price = price
        self.tracing = tracing
        self.bodies = bodies or BodyPolicy()
        self.bodies_on = self.bodies.mode != "none"
        self.virtual_keys = virtual_keys
        self.stored_configs = stored_configs
        self.is_provider = is_provider
        self.gateway = gateway
        self.auth = auth
        self.max_body_bytes = max_body_bytes
        self.on_done = on_done
        self.custom_host_allowlist = tuple(custom_host_allowlist)
        self.watches = DisconnectWatches()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """What every raw endpoint shares: the exchange, its error replies, disconnects and its call record."""
        headers: dict[bytes, bytes] = dict(scope["headers"])  # raw: decoding every header cost 6x this dict
        ex = Exchange(scope["path"], _request_id(headers), time.perf_counter())
        try:
            if self.bodies_on or BODIES_HEADER in headers:  # off (the default): nothing is wrapped or copied
                receive, send = self._tap_bodies(ex, headers, receive, send)
            await self._handle(ex, scope, headers, receive, send)
        except ClientDisconnected:
            _disconnected(ex)
        except asyncio.CancelledError:
            if not ex.disconnected:
                raise
            _disconnected(ex)
        except PorticoError as error:
            await self._fail(ex, error, send)
        except Exception:
            log.exception("unhandled error serving request %s", ex.request_id)
            await self._fail(ex, internal_error(ex.request_id), send)
        finally:
            ex.finished = time.perf_counter()
            self.watches.done(ex)
            if ex.recorded:
                self.on_done(ex)

    def _tap_bodies(
        self, ex: Exchange, headers: dict[bytes, bytes], receive: Receive, send: Send
    ) -> tuple[Receive, Send]:
        """`receive` and `send` that also hand the bodies to the exchange's `BodyCapture` (the call log keeps
        them); unchanged when this request keeps none. A header that names no mode refuses the request."""
        try:
            mode = self.bodies.mode_for(headers.get(BODIES_HEADER))
        except BadBodyMode as exc:
            raise RequestError(str(exc), code="invalid_header", param=BODIES_HEADER.decode()) from None
        if mode == "none":
            return receive, send
        capture = ex.bodies = BodyCapture(self.bodies, mode)
        return _tapped_receive(receive, capture), _tapped_send(send, capture)

    async def _handle(
        self, ex: Exchange, scope: Scope, headers: dict[bytes, bytes], receive: Receive, send: Send
    ) -> None:
        """A chat completion: parse, then the gateway's JSON or streaming path. Endpoints built on this one
        (deployments) override only this."""
        ex.dialect = "orq" if ex.path.startswith("/v2/") else "portkey" if has_portkey_headers(headers) else "openai"
        request = await self._parse(ex, scope, headers, receive)
        self.watches.watch(ex, receive)
        ex.served = Served()
        if request.stream:
            ex.served.relay = True  # write_stream sends the frames unread: whole blocks of events may pass
            chunks, _ = await self.gateway.stream(request, ex.served)
            if self.tracing:  # off: the stream is not wrapped
                ex.finish_reasons = []
                chunks = tap_finish_reasons(chunks, ex.finish_reasons)
            ex.overhead_ms = _overhead_ms(ex, ex.served)
            ex.status = ex.served.status  # Portkey's 246 (a hook failed without denying) is known before the headers
            sender = send if ex.status == 200 else _with_status(send, ex.status)
            await write_stream(sender, chunks, response_headers(ex, ex.served), ex, ex.dialect)
        else:
            result, _ = await self.gateway.chat(request, ex.served)
            await self._reply(ex, result, send)

    async def _parse(
        self, ex: Exchange, scope: Scope, raw_headers: dict[bytes, bytes], receive: Receive
    ) -> ChatRequest:
        client_key = self.auth.client_key(raw_headers)
        body = await read_body(receive, raw_headers, self.max_body_bytes)
        try:
            raw = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise MalformedJSON() from None
        wire = validate_body(raw)
        check_rules(wire, ex.dialect)
        with_portkey = ex.dialect == "portkey" or (ex.dialect == "orq" and has_portkey_headers(raw_headers))
        headers = header_map(scope) if with_portkey else {}
        portkey = read_portkey_headers(headers) if with_portkey else None
        ex.portkey = with_portkey
        if portkey is not None and portkey.provider and wire.model:
            raw["model"] = wire.model = qualify(wire.model, portkey.provider)
        request = build_request(raw, wire, dialect=ex.dialect, client_key=client_key, portkey=portkey)
        if portkey is not None:
            request = apply_portkey_headers(
                request,
                headers,
                portkey,
                is_gateway_key=self.auth.is_gateway_key,
                host_allowlist=self.custom_host_allowlist,
                virtual_keys=self.virtual_keys,
                stored_configs=self.stored_configs,
                is_provider=self.is_provider,
            )
        if self.tracing:  # off: not even a header lookup
            request.trace = traced(request.trace, raw_headers.get(b"traceparent"))
            request.forward_headers = {**(request.forward_headers or {}), "traceparent": traceparent_of(request.trace)}
        ex.request = request
        return request

    async def _reply(self, ex: Exchange, result: ChatResult, send: Send) -> None:
        body = result.raw if result.raw is not None else orjson.dumps(result.body)
        served = ex.served
        assert served is not None
        ex.overhead_ms = _overhead_ms(ex, served)
        if self.price is not None:
            ex.cost_usd = self.price(served)
        if self.tracing:
            ex.finish_reasons = finish_reasons_of(result.body)
        ex.status = served.status  # 200, or Portkey's 246 (a guardrail hook failed without denying)
        await send_json(send, served.status, body, response_headers(ex, served))

    async def _fail(self, ex: Exchange, error: PorticoError, send: Send) -> None:
        ex.status, ex.error = status_for(error, ex.dialect), error
        headers = [(b"x-request-id", ex.request_id.encode()), *error_headers(error)]
        if ex.served is not None and ex.served.attempts:
            headers.append((b"x-portico-attempts", str(len(ex.served.attempts)).encode()))
        await send_json(send, ex.status, error_body(error, ex.dialect), headers)


def response_headers(ex: Exchange, served: Served) -> list[tuple[bytes, bytes]]:
    """Each header costs the server a validation and a copy, so only those that say something are sent: the
    attempt count once there was more than one attempt, Portkey's own headers only to Portkey clients."""
    headers = [
        (b"x-request-id", ex.request_id.encode()),
        (b"x-portico-provider", served.provider.encode()),
        (b"x-portico-model", served.model.encode("latin-1", "replace")),
        (b"x-portico-overhead-ms", f"{ex.overhead_ms:.3f}".encode()),
    ]
    if len(served.attempts) > 1:
        headers.append((b"x-portico-attempts", str(len(served.attempts)).encode()))
    if served.cache_status is not None:
        headers.append((b"x-portico-cache", served.cache_status.encode()))
    if served.dropped_params:
        headers.append((b"x-portico-dropped-params", ",".join(served.dropped_params).encode()))
    if ex.cost_usd is not None:  # JSON answers only: a stream's headers leave before its usage is known
        headers.append((b"x-portico-cost-usd", f"{ex.cost_usd:.8f}".encode()))
    if ex.portkey:
        headers.extend(_portkey_headers(ex, served))
    return headers


def _portkey_headers(ex: Exchange, served: Served) -> list[tuple[bytes, bytes]]:
    headers = [(b"x-portkey-retry-attempt-count", str(max(0, len(served.attempts) - 1)).encode())]
    if served.option_index is not None:
        headers.append((b"x-portkey-last-used-option-index", served.option_index.encode()))
    if served.cache_status is not None:
        headers.append((b"x-portkey-cache-status", served.cache_status.encode()))
    trace_id = ex.request.trace.trace_id if ex.request is not None else None
    if trace_id:
        headers.append((b"x-portkey-trace-id", trace_id.encode("latin-1", "replace")))
    return headers


def _with_status(send: Send, status: int) -> Send:
    """`send` with the response's status replaced: `write_stream` starts every stream with 200."""

    async def sender(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "status": status}
        await send(message)

    return sender


def _tapped_receive(receive: Receive, capture: BodyCapture) -> Receive:
    async def tapped() -> Message:
        message = await receive()
        if message["type"] == "http.request":
            capture.request(message.get("body", b""))
        return message

    return tapped


def _tapped_send(send: Send, capture: BodyCapture) -> Send:
    """Every body byte the client is sent: a JSON answer, an error, or a stream's frames as they are written."""

    async def tapped(message: Message) -> None:
        if message["type"] == "http.response.body":
            capture.response(message.get("body", b""))
        await send(message)

    return tapped


def _disconnected(ex: Exchange) -> None:
    """The client left: nothing more is sent, the upstream call (if any) was cancelled with the serving task, and
    the call is recorded as cancelled (499, nginx's "client closed request")."""
    current = asyncio.current_task()
    if current is not None and current.cancelling():
        current.uncancel()
    ex.disconnected = True
    ex.status = 499


def _overhead_ms(ex: Exchange, served: Served) -> float:
    return max(0.0, (time.perf_counter() - ex.started) * 1000 - served.upstream_ms)


def _request_id(headers: dict[bytes, bytes]) -> str:
    given = headers.get(b"x-request-id")
    if given and len(given) <= 128:
        text = given.decode("latin-1")
        if text.isprintable():
            return text
    return time_ordered_id()
