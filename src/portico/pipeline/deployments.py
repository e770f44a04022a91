"""A deployment invocation → the `ChatRequest` the gateway serves: pick the variant from `context`, take its prompt
(inline, or stored by id and version), render `inputs` over the defaults, place the messages, merge `extra_params`.

The result is the router body the variant stands for, validated and converted by the router's own code
(`wire/convert.py`), so fallbacks, retry, cache and timeout behave exactly as on `/v2/router` (CHECKLIST BEH-DEP-*).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from portico.core.deployments import Deployment, Variant, placeholders
from portico.core.errors import FieldError, NotFound, ValidationFailed
from portico.core.prompts import StoredPrompt, Version
from portico.core.types import ChatRequest, JSONObject
from portico.pipeline.templating import render_messages
from portico.wire.convert import build_request, validate_body
from portico.wire.deployments import DeploymentInvoke
from portico.wire.openai_chat import GATEWAY_FIELDS

PromptLookup = Callable[[str, Version], StoredPrompt | None]
_RESERVED = GATEWAY_FIELDS | {"messages", "stream", "stream_options"}
_LEADING = ("system", "developer")


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


def resolve(
    deployment: Deployment, invoke: DeploymentInvoke, raw: Mapping[str, Any], prompts: PromptLookup
) -> Resolved:
    """`raw` is the decoded request body (its messages are passed on as sent); `invoke` the same, validated."""
    variant = deployment.variant_for(invoke.context)
    if invoke.knowledge_filter is not None and not variant.knowledge_bases:
        message = f"Deployment '{deployment.key}' (variant '{variant.name}') uses no knowledge base to filter"
        raise ValidationFailed([FieldError(("body", "knowledge_filter"), message)])
    stored = _stored_prompt(deployment, variant, prompts)
    base = stored.messages if stored is not None and not variant.messages else variant.messages
    engine = variant.template_engine if stored is None or variant.template_engine != "text" else stored.template_engine
    defaults = {**(stored.variables if stored is not None else {}), **variant.inputs}
    values = {**defaults, **_inputs(invoke)}
    if engine == "jinja":
        rendered = _render(deployment, variant, list(base), values, engine)
    else:
        names = placeholders(base) if base is not variant.messages else variant.placeholders
        _check_inputs(deployment, names, values)
        rendered = _render(deployment, variant, list(base), values, engine) if names else list(base)
    lead = 0
    while lead < len(rendered) and rendered[lead].get("role") in _LEADING:
        lead += 1
    messages = [*rendered[:lead], *(raw.get("prefix_messages") or ()), *rendered[lead:], *(raw.get("messages") or ())]
    parameters = {**(stored.parameters if stored is not None else {}), **variant.parameters}
    extra = invoke.extra_params or {}
    if extra:
        reserved = sorted(_RESERVED.intersection(extra))
        if reserved:
            message = "Set by the deployment, not a model parameter"
            raise ValidationFailed([FieldError(("body", "extra_params", n), message) for n in reserved])
        parameters.update(extra)
    model = variant.model or (stored.model if stored is not None else None) or ""
    tools = variant.tools if variant.tools is not None else (stored.tools if stored is not None else None)
    response_format = variant.response_format or (stored.response_format if stored is not None else None)
    return Resolved(
        deployment, variant, model, messages, parameters, list(tools) if tools is not None else None, response_format
    )


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
    body = _router_body(resolved, invoke, raw)
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    try:
        wire = validate_body(body)
    except ValidationFailed as failed:
        raise _from_extra_params(failed, invoke.extra_params or {}) from None
    request = build_request(body, wire, dialect="orq", client_key=client_key)
    # Set in place: the request was built just now and nothing else holds it (a second `replace` of all its
    # fields cost more than the rest of this function).
    request.trace = replace(request.trace, trace_id=trace_id, span_id=span_id)
    return request


def _router_body(resolved: Resolved, invoke: DeploymentInvoke, raw: Mapping[str, Any]) -> dict[str, Any]:
    variant, deployment = resolved.variant, resolved.deployment
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
    if variant.knowledge_bases:
        body["knowledge_bases"] = [{"knowledge_id": k} for k in variant.knowledge_bases]
    for name in ("identity", "contact", "thread"):
        if raw.get(name) is not None:
            body[name] = raw[name]
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
    body["metadata"] = metadata
    return body


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
    inputs = invoke.inputs
    if inputs is None:
        return {}
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
