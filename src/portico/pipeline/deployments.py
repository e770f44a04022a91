"""A deployment invocation → the `ChatRequest` the gateway serves: pick the variant from `context`, take its prompt
(inline, or stored by id and version), render `inputs` over the defaults, place the messages, merge `extra_params`.

The result is the router body the variant stands for, validated and converted by the router's own code
(`wire/convert.py`), so fallbacks, retry, cache and timeout behave exactly as on `/v2/router` (CHECKLIST BEH-DEP-*).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from portico.core.deployments import Deployment, Variant, placeholders
from portico.core.errors import FieldError, NotFound, ValidationFailed
from portico.core.prompts import StoredPrompt, Version
from portico.core.types import ChatRequest, JSONObject, TraceInfo
from portico.pipeline.templating import render_messages
from portico.wire.convert import build_request, validate_body
from portico.wire.deployments import DeploymentInvoke
from portico.wire.openai_chat import GATEWAY_FIELDS, ChatCompletionRequest

PromptLookup = Callable[[str, Version], StoredPrompt | None]
_RESERVED = GATEWAY_FIELDS | {"messages", "stream", "stream_options"}
_LEADING = ("system", "developer")
_FROM_REQUEST = ("identity", "contact", "thread")
"""Router fields a request passes on as sent, in the router body's order."""
_FROM_REQUEST_SET = frozenset(_FROM_REQUEST)


@dataclass(slots=True)
class Resolved:
    """A deployment's variant made concrete for one request: what is sent, before the router's conversion."""

    deployment: Deployment
    variant: Variant
    model: str
    messages: list[JSONObject]
    parameters: dict[str, Any]
    tools: list[JSONObject] | None = None
    response_format: JSONObject | None = None
    fixed: _Base | None = None
    """Set when the request added nothing to what the variant sends (no inputs, messages or `extra_params`):
    its router body then is the one of every such request, validated once (`_Base.bodies`)."""


def resolve(
    deployment: Deployment, invoke: DeploymentInvoke, raw: Mapping[str, Any], prompts: PromptLookup
) -> Resolved:
    """`raw` is the decoded request body (its messages are passed on as sent); `invoke` the same, validated."""
    variant = deployment.variant_for(invoke.context)
    if invoke.knowledge_filter is not None:
        if not variant.knowledge_bases:
            message = f"Deployment '{deployment.key}' (variant '{variant.name}') uses no knowledge base to filter"
            raise ValidationFailed([FieldError(("body", "knowledge_filter"), message)])
        from portico.knowledge.filters import parse_filter  # the grammar, loaded by the requests that filter

        parse_filter(invoke.knowledge_filter, path=("body", "knowledge_filter"))
    stored = _stored_prompt(deployment, variant, prompts)
    base = _base_of(deployment, variant, stored)
    inputs = invoke.inputs
    if inputs:
        values = {**base.defaults, **_inputs(invoke)}
        if base.engine == "text":  # jinja and mustache render a missing name empty, as their standards say
            _check_inputs(deployment, base.names, values)
        render = base.engine != "text" or base.names
        rendered = _render(deployment, variant, list(base.messages), values, base.engine) if render else base.messages
    else:
        rendered = base.rendered if base.rendered is not None else _render_defaults(deployment, variant, base)
    prefix, appended = raw.get("prefix_messages"), raw.get("messages")
    if prefix:
        lead = base.lead if rendered is base.rendered else _lead(rendered)
        messages = [*rendered[:lead], *prefix, *rendered[lead:], *(appended or ())]
    else:
        messages = [*rendered, *appended] if appended else list(rendered)
    parameters = base.parameters
    extra = invoke.extra_params
    if extra:
        reserved = sorted(_RESERVED.intersection(extra))
        if reserved:
            message = "Set by the deployment, not a model parameter"
            raise ValidationFailed([FieldError(("body", "extra_params", n), message) for n in reserved])
        parameters = {**parameters, **extra}
    tools = base.tools
    fixed = not (inputs or prefix or appended or extra or invoke.knowledge_filter is not None)
    return Resolved(
        deployment,
        variant,
        base.model,
        messages,
        parameters,
        list(tools) if tools is not None else None,
        base.response_format,
        base if fixed else None,
    )


@dataclass(frozen=True, slots=True)
class _Base:
    """What a variant (with the stored prompt version it names) sends whatever the request says: worked out
    once per version instead of on every invocation. `rendered` is the messages with the default inputs, when
    they render (else None: the request then gets the error)."""

    messages: tuple[JSONObject, ...]
    engine: str
    defaults: Mapping[str, Any]
    names: tuple[str, ...]
    parameters: dict[str, Any]
    """Shared by every request that has no `extra_params`: read, never changed."""
    model: str
    tools: tuple[JSONObject, ...] | None
    response_format: JSONObject | None
    rendered: tuple[JSONObject, ...] | None = None
    lead: int = 0
    bodies: dict[bool, tuple[dict[str, Any], ChatCompletionRequest]] = field(default_factory=dict)
    """stream → the router body of a request that adds nothing (`Resolved.fixed`), and its validated form."""


_BASES: dict[tuple[int, int], tuple[Variant, StoredPrompt | None, _Base]] = {}
"""(id(variant), id(stored prompt)) → the objects (kept, so that an id is not reused while its entry lives)."""
_MAX_BASES = 4096


def _base_of(deployment: Deployment, variant: Variant, stored: StoredPrompt | None) -> _Base:
    key = (id(variant), id(stored))
    entry = _BASES.get(key)
    if entry is not None and entry[0] is variant and entry[1] is stored:
        return entry[2]
    base = _new_base(deployment, variant, stored)
    if len(_BASES) >= _MAX_BASES:  # old versions: dropped all at once, rebuilt on demand
        _BASES.clear()
    _BASES[key] = (variant, stored, base)
    return base


def _new_base(deployment: Deployment, variant: Variant, stored: StoredPrompt | None) -> _Base:
    messages = tuple(stored.messages) if stored is not None and not variant.messages else variant.messages
    engine = variant.template_engine if stored is None or variant.template_engine != "text" else stored.template_engine
    names = placeholders(messages) if messages is not variant.messages else variant.placeholders
    if variant.knowledge_bases:  # `{{<knowledge_id>}}` is where the retrieved chunks go (AMB-44), not an input
        names = tuple(name for name in names if name not in variant.knowledge_bases)
    tools = variant.tools if variant.tools is not None else (stored.tools if stored is not None else None)
    base = _Base(
        messages=messages,
        engine=engine,
        defaults={**(stored.variables if stored is not None else {}), **variant.inputs},
        names=names,
        parameters={**(stored.parameters if stored is not None else {}), **variant.parameters},
        model=variant.model or (stored.model if stored is not None else None) or "",
        tools=tuple(tools) if tools is not None else None,
        response_format=variant.response_format or (stored.response_format if stored is not None else None),
    )
    try:
        rendered = tuple(_render_defaults(deployment, variant, base))
    except ValidationFailed:
        return base
    return replace(base, rendered=rendered, lead=_lead(rendered))


def _render_defaults(deployment: Deployment, variant: Variant, base: _Base) -> tuple[JSONObject, ...]:
    """The messages with no request input: the defaults, rendered (the same errors as any request's)."""
    values = dict(base.defaults)
    if base.engine != "text":
        return tuple(_render(deployment, variant, list(base.messages), values, base.engine))
    _check_inputs(deployment, base.names, values)
    if not base.names:
        return base.messages
    return tuple(_render(deployment, variant, list(base.messages), values, base.engine))


def _lead(messages: Sequence[JSONObject]) -> int:
    """How many leading system/developer messages: `prefix_messages` go after them."""
    lead = 0
    while lead < len(messages) and messages[lead].get("role") in _LEADING:
        lead += 1
    return lead


def chat_request(
    resolved: Resolved,
    invoke: DeploymentInvoke,
    raw: Mapping[str, Any],
    *,
    stream: bool,
    client_key: str | None,
    trace_id: str,
    span_id: str,
) -> ChatRequest:
    """The router body the variant stands for, through the router's validation and conversion. Streams always
    ask the upstream for usage: the call log needs it, and the reply shows it only when `include_usage` says so."""
    fixed = resolved.fixed
    if fixed is not None and _FROM_REQUEST_SET.isdisjoint(raw):
        cached = fixed.bodies.get(stream)
        if cached is None:
            body = _router_body(resolved, raw, stream=stream)
            cached = fixed.bodies[stream] = (dict(body), _validated(body, invoke))
        # A copy, as `build_request` consumes it; the messages are this request's own list, as on every path.
        body = {**cached[0], "messages": resolved.messages}
        wire = cached[1]
    else:
        body = _router_body(resolved, raw, stream=stream)
        wire = _validated(body, invoke)
    request = build_request(body, wire, dialect="orq", client_key=client_key)
    # `metadata` (validated as the invocation's) goes on the trace, not through the router's conversion: the
    # deployment's own keys in it alone sent every invocation down `build_request`'s slow path. Set in place:
    # the request was built just now and nothing else holds it.
    trace = request.trace
    metadata = _metadata(resolved, invoke, raw)
    request.trace = TraceInfo(trace_id, span_id, trace.parent_span_id, metadata, trace.identity, trace.thread)
    return request


def _validated(body: dict[str, Any], invoke: DeploymentInvoke) -> ChatCompletionRequest:
    try:
        return validate_body(body)
    except ValidationFailed as failed:
        raise _from_extra_params(failed, invoke.extra_params or {}) from None


def _router_body(resolved: Resolved, raw: Mapping[str, Any], *, stream: bool) -> dict[str, Any]:
    """Streams always ask the upstream for usage: the call log needs it (the reply shows it when asked)."""
    variant = resolved.variant
    body: dict[str, Any] = {**resolved.parameters, "model": resolved.model, "messages": resolved.messages}
    if resolved.tools is not None:
        body["tools"] = resolved.tools
    if resolved.response_format is not None:
        body["response_format"] = resolved.response_format
    if variant.fallbacks:
        body["fallbacks"] = [{"model": model} for model in variant.fallbacks]
    if variant.retry is not None:
        body["retry"] = dict(variant.retry)
    if variant.cache_ttl is not None:
        body["cache"] = {"type": "exact_match", "ttl": variant.cache_ttl}
    if variant.timeout_ms is not None:
        body["timeout"] = {"call_timeout": variant.timeout_ms}
    if variant.guardrails:
        body["guardrails"] = [{"id": g, "execute_on": on} for g, on in variant.guardrails]
    if variant.knowledge_bases:  # searched with the request's `knowledge_filter` (BEH-KB-05, RQ-D-13)
        found = raw.get("knowledge_filter")
        body["knowledge_bases"] = [
            {"knowledge_id": k, "filter_by": found} if found is not None else {"knowledge_id": k}
            for k in variant.knowledge_bases
        ]
    for name in _FROM_REQUEST:
        if raw.get(name) is not None:
            body[name] = raw[name]
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def _metadata(resolved: Resolved, invoke: DeploymentInvoke, raw: Mapping[str, Any]) -> dict[str, Any]:
    deployment, variant = resolved.deployment, resolved.variant
    metadata: dict[str, Any] = {
        **(invoke.metadata or {}),
        "deployment_key": deployment.key,
        "deployment_version": deployment.version,
        "deployment_variant": variant.name,
    }
    if invoke.file_ids:
        metadata["file_ids"] = invoke.file_ids
    if raw.get("documents"):
        metadata["documents"] = raw["documents"]  # for evaluators and guardrails; never sent to the model
    return metadata


def _from_extra_params(failed: ValidationFailed, extra: Mapping[str, Any]) -> ValidationFailed:
    """A merged body can only break the router's schema through `extra_params`: say so in the error's path."""
    errors = [
        FieldError(("body", "extra_params", *e.loc[1:]), e.msg, e.type) if len(e.loc) > 1 and e.loc[1] in extra else e
        for e in failed.errors
    ]
    return ValidationFailed(errors)


def _stored_prompt(deployment: Deployment, variant: Variant, prompts: PromptLookup) -> StoredPrompt | None:
    if variant.prompt_id is None:
        return None
    stored = prompts(variant.prompt_id, variant.prompt_version)
    if stored is None:  # deleted after the deployment was written
        raise NotFound(
            f"Deployment '{deployment.key}' uses prompt '{variant.prompt_id}' (version {variant.prompt_version}), "
            "which no longer exists.",
            code="prompt_not_found",
            param="key",
        )
    return stored


def _inputs(invoke: DeploymentInvoke) -> dict[str, Any]:
    inputs = invoke.inputs or {}  # the caller asks only when there are inputs; None stays harmless
    if isinstance(inputs, list):
        return {item.key: item.value for item in inputs}
    return inputs


def _check_inputs(deployment: Deployment, names: tuple[str, ...], values: Mapping[str, Any]) -> None:
    missing = [name for name in names if name not in values]
    if missing:
        raise ValidationFailed(
            [
                FieldError(
                    ("body", "inputs", name),
                    f"Input '{name}' is required by deployment '{deployment.key}' and has no default",
                    "missing",
                )
                for name in missing
            ]
        )


def _render(
    deployment: Deployment, variant: Variant, messages: list[JSONObject], values: Mapping[str, Any], engine: str
) -> list[JSONObject]:
    if not values:
        return messages
    try:
        rendered: list[JSONObject] = render_messages({"messages": messages}, values, engine)["messages"]
    except ValidationFailed as failed:
        error = failed.errors[0]
        index = error.loc[2] if len(error.loc) > 2 else 0
        message = (
            f"The template of deployment '{deployment.key}' (variant '{variant.name}', message {index}) "
            f"failed to render: {error.msg}"
        )
        raise ValidationFailed([FieldError(("body", "inputs"), message, "template_error")]) from None
    return rendered
