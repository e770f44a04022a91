"""POST /v2/deployments/invoke, /v2/deployments/stream and /v2/deployments/get_config: one raw ASGI handler.

Parse → authenticate → resolve the deployment's variant (`pipeline/deployments.py`) → `Gateway.chat()`/`stream()`
→ answer in orq's deployment shape. Everything else is the chat endpoint's: auth, body limits, error bodies, the
disconnect watch and the call record. A `mock_response` calls no upstream and is not recorded (AMB-50), nor is
`get_config`, which calls no model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from portico.core.deployments import Deployment
from portico.core.errors import MalformedJSON, NotFound, PorticoError
from portico.core.types import JSONObject
from portico.http.asgi import Receive, Scope, Send, read_body, send_json
from portico.http.auth import Authenticator
from portico.http.routes.chat import ChatEndpoint, Exchange, OnDone, PriceServed, _overhead_ms
from portico.http.routes.chat import response_headers as chat_headers
from portico.http.sse import write_stream
from portico.observability.bodies import BodyPolicy
from portico.observability.trace_context import finish_reasons_of, tap_finish_reasons, traced, traceparent_of
from portico.pipeline.deployments import PromptLookup, Resolved, chat_request, resolve
from portico.pipeline.gateway import Gateway
from portico.pipeline.served import Served
from portico.providers.base import Provider
from portico.providers.registry import ProviderRegistry
from portico.wire.deployment_replies import (
    ReplyFrame,
    StreamShaper,
    invoke_body,
    mock_body,
    mock_stream,
    new_trace_ids,
    orq_provider,
)
from portico.wire.deployments import DeploymentInvoke, InvokeOptions, camel_parameters, validate_invoke

log = logging.getLogger("portico.http")

INVOKE, STREAM, CONFIG = "/v2/deployments/invoke", "/v2/deployments/stream", "/v2/deployments/get_config"
_NO_OPTIONS = InvokeOptions()
DeploymentLookup = Callable[[str], Deployment | None]


@dataclass(slots=True)
class _Job:
    invoke: DeploymentInvoke
    resolved: Resolved
    frame: ReplyFrame
    stream: bool
    local: bool
    """Answered without a model: `get_config`, or a `mock_response`."""


class DeploymentEndpoint(ChatEndpoint):
    def __init__(
        self,
        gateway: Gateway,
        auth: Authenticator,
        deployments: DeploymentLookup,
        prompts: PromptLookup,
        *,
        max_body_bytes: int,
        on_done: OnDone,
        price: PriceServed | None = None,
        tracing: bool = False,
        bodies: BodyPolicy | None = None,
    ) -> None:
        super().__init__(
            gateway, auth, max_body_bytes=max_body_bytes, on_done=on_done, price=price, tracing=tracing, bodies=bodies
        )
        self.deployments = deployments
        self.prompts = prompts
        self._orq_models: dict[str, tuple[str, str]] = {}
        """`provider/model` → orq's provider name and the bare model (`orq_model`)."""
        self._orq_names: dict[str, str] = {}
        """Configured provider → orq's provider name: the names are the registry's, so this stays small."""

    async def _handle(
        self, ex: Exchange, scope: Scope, headers: dict[bytes, bytes], receive: Receive, send: Send
    ) -> None:
        ex.dialect = "orq"
        job = await self._parse_job(ex, headers, receive)
        if job.local:
            ex.recorded = False
            await self._answer_locally(ex, job, send)
            return
        self.watches.watch(ex, receive)
        await self._serve_job(ex, job, send)

    async def _parse_job(self, ex: Exchange, raw_headers: dict[bytes, bytes], receive: Receive) -> _Job:
        client_key = self.auth.client_key(raw_headers)
        body = await read_body(receive, raw_headers, self.max_body_bytes)
        try:
            raw = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise MalformedJSON() from None
        invoke = validate_invoke(raw)
        deployment = self.deployments(invoke.key)
        if deployment is None:
            raise NotFound(f"Deployment '{invoke.key}' not found.", code="deployment_not_found", param="key")
        resolved = resolve(deployment, invoke, raw, self.prompts)
        options = invoke.invoke_options or _NO_OPTIONS
        stream = ex.path == STREAM or (ex.path == INVOKE and invoke.stream)
        trace_id, span_id = new_trace_ids(raw_headers.get(b"traceparent") or raw_headers.get(b"x-portkey-trace-id"))
        provider, model = self._provider_of(resolved.model)
        frame = ReplyFrame(model, provider, trace_id, span_id, options.include_usage, options.include_retrievals)
        local = ex.path == CONFIG or options.mock_response is not None
        if not local:
            request = ex.request = chat_request(
                resolved, invoke, raw, stream=stream, client_key=client_key, trace_id=trace_id, span_id=span_id
            )
            if self.tracing:  # as the router path: the caller's span is the parent, the upstream gets ours
                request.trace = traced(request.trace, raw_headers.get(b"traceparent"))
                forward = {**(request.forward_headers or {}), "traceparent": traceparent_of(request.trace)}
                request.forward_headers = forward
        return _Job(invoke, resolved, frame, stream, local)

    async def _serve_job(self, ex: Exchange, job: _Job, send: Send) -> None:
        request = ex.request
        assert request is not None
        served = ex.served = Served()
        if job.stream:
            chunks, _ = await self.gateway.stream(request, served)
            if self.tracing:  # off: the stream is not wrapped
                ex.finish_reasons = []
                chunks = tap_finish_reasons(chunks, ex.finish_reasons)
            self._served_by(job.frame, served)
            ex.overhead_ms = _overhead_ms(ex, served)
            shaped = StreamShaper(job.frame).run(chunks)
            await write_stream(send, shaped, chat_headers(ex, served), ex, "orq")
            return
        result, _ = await self.gateway.chat(request, served)
        self._served_by(job.frame, served)
        completion = result.body if result.raw is None else None  # relayed bytes: only what is shown is decoded
        if self.tracing:
            ex.finish_reasons = finish_reasons_of(result.body)
        if self.price is not None:
            ex.cost_usd = self.price(served)
        body = orjson.dumps(invoke_body(job.frame, completion, result.raw, result.usage))
        ex.overhead_ms = _overhead_ms(ex, served)
        await send_json(send, 200, body, chat_headers(ex, served))

    async def _answer_locally(self, ex: Exchange, job: _Job, send: Send) -> None:
        headers = [(b"x-request-id", ex.request_id.encode())]
        if ex.path == CONFIG:
            await send_json(send, 200, orjson.dumps(config_body(job)), headers)
            return
        text = (job.invoke.invoke_options or _NO_OPTIONS).mock_response or ""
        if job.stream:
            await write_stream(send, mock_stream(job.frame, text), headers, ex, "orq")
        else:
            await send_json(send, 200, orjson.dumps(mock_body(job.frame, text)), headers)

    def _provider_of(self, address: str) -> tuple[str, str]:
        hit = self._orq_models.get(address)
        if hit is None:
            hit = orq_model(self.gateway.providers, address)
            if len(self._orq_models) < 4096:  # the registry does not change: an answer holds for the process
                self._orq_models[address] = hit
        return hit

    def _served_by(self, frame: ReplyFrame, served: Served) -> None:
        frame.retrievals = served.retrievals
        name = served.provider
        if name:
            frame.integration_id = name
            orq_name = self._orq_names.get(name)
            if orq_name is None and name in self.gateway.providers:
                orq_name = self._orq_names[name] = orq_provider(adapter_of(self.gateway.providers.get(name)))
            if orq_name is not None:
                frame.provider = orq_name
        if served.model:
            frame.model = served.model


def orq_model(providers: ProviderRegistry, address: str) -> tuple[str, str]:
    """orq's provider name and the bare model of a `provider/model` address (AMB-47)."""
    try:
        provider, model = providers.resolve(address)
    except PorticoError:
        return "openailike", address
    return orq_provider(adapter_of(provider)), model


def adapter_of(provider: Provider) -> str:
    """The adapter a configured provider runs (`type`, else its name): OpenAI-compatible ones share `kind`."""
    return provider.config.type or provider.name


def config_body(job: _Job) -> JSONObject:
    """`get_config`: the variant the request would be served by, rendered; no model is called."""
    resolved = job.resolved
    body: JSONObject = {
        "id": resolved.deployment.id,
        "key": resolved.deployment.key,
        "version": str(resolved.deployment.version),
        "variant": resolved.variant.name,
        "provider": job.frame.provider,
        "model": job.frame.model,
        "type": "chat",
        "messages": resolved.messages,
        "parameters": camel_parameters(resolved.parameters),
    }
    if resolved.tools is not None:
        body["tools"] = resolved.tools
    return body
