"""Deployments on the wire: the invoke/stream/get_config body (msgspec, validated on the request path) and the
admin schemas `DeploymentCreate/Update/Public` (pydantic, FastAPI's), plus the write-time check that turns an admin
body into the stored content. A body that check refuses is never stored; every refusal names its path.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Literal

import msgspec
from msgspec import Struct
from pydantic import BaseModel, ConfigDict, Field

from portico.core.errors import FieldError, ValidationFailed
from portico.wire.convert import field_error, validate_body
from portico.wire.openai_chat import GATEWAY_FIELDS, Identity, InputItem, Message, Thread


class InvokeOptions(Struct):
    include_retrievals: bool = False
    include_usage: bool = False
    mock_response: str | None = None


class DocumentMetadata(Struct):
    file_name: str | None = None
    file_type: str | None = None
    page_number: float | None = None


class Document(Struct):
    text: str
    metadata: DocumentMetadata | None = None


class DeploymentInvoke(Struct):
    """`POST /v2/deployments/invoke`, `/stream` and `/get_config`: orq's `InvokeDeploymentRequest` (AMB-02)."""

    key: str
    stream: bool = False
    inputs: dict[str, Any] | list[InputItem] | None = None
    context: dict[str, Any] | None = None
    prefix_messages: list[Message] | None = None
    messages: list[Message] | None = None
    identity: Identity | None = None
    contact: Identity | None = None
    file_ids: list[str] | None = None
    metadata: dict[str, Any] | None = None
    extra_params: dict[str, Any] | None = None
    documents: list[Document] | None = None
    invoke_options: InvokeOptions | None = None
    thread: Thread | None = None
    knowledge_filter: dict[str, Any] | None = None


def validate_invoke(raw: Any) -> DeploymentInvoke:
    if not isinstance(raw, dict):
        raise ValidationFailed([FieldError(("body",), "The request body must be a JSON object.", "type_error")])
    try:
        return msgspec.convert(raw, DeploymentInvoke)
    except msgspec.ValidationError as exc:
        raise ValidationFailed([field_error(exc)]) from None


_NAME = r"^[A-Za-z0-9_.-]{1,128}$"
Engine = Literal["text", "jinja", "mustache"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PromptIn(_Strict):
    """Inline `messages`, or a stored prompt by `id` (and `version`, a number or "latest")."""

    messages: list[dict[str, Any]] | None = None
    id: str | None = None
    version: int | Literal["latest"] = "latest"


class RetryIn(_Strict):
    count: int = Field(3, ge=1, le=5)
    on_codes: list[int] = Field(default_factory=lambda: [429], min_length=1)


class CacheIn(_Strict):
    type: Literal["exact_match"] = "exact_match"
    ttl: int = Field(1800, ge=1, le=259200)


class TimeoutIn(_Strict):
    call_timeout: float = Field(ge=1, description="Milliseconds for one upstream call, as on the router.")


class GuardrailIn(_Strict):
    id: str
    execute_on: Literal["input", "output"]


class VariantFields(_Strict):
    model: str | None = Field(None, description="`provider/model`; may come from a stored prompt instead.")
    prompt: PromptIn | None = None
    parameters: dict[str, Any] = Field(default_factory=dict, description="Sent with every call; `extra_params` win.")
    inputs: dict[str, Any] = Field(default_factory=dict, description="Defaults of the template variables.")
    template_engine: Engine | None = None
    fallbacks: list[str] = Field(default_factory=list, description="Models tried in order when the model fails.")
    retry: RetryIn | None = None
    cache: CacheIn | None = None
    timeout: TimeoutIn | None = None
    tools: list[dict[str, Any]] | None = None
    response_format: dict[str, Any] | None = None
    knowledge_bases: list[str] = Field(default_factory=list)
    guardrails: list[GuardrailIn] = Field(default_factory=list)


class VariantIn(VariantFields):
    name: str = Field("default", pattern=_NAME)


class RoutingRuleIn(_Strict):
    """`when` maps a context field to a value (equality), `{"in": [...]}` or `{"exists": true|false}`; all must
    hold. Rules are tried in order; the first that matches picks `variant`."""

    when: dict[str, Any] = Field(min_length=1)
    variant: str


class DeploymentUpdate(VariantFields):
    """Either the one-variant form (the variant's fields at the top level) or `variants` plus `routing`."""

    description: str = ""
    variants: list[VariantIn] | None = Field(None, min_length=1)
    routing: list[RoutingRuleIn] = Field(default_factory=list)
    default_variant: str | None = None


class DeploymentCreate(DeploymentUpdate):
    key: str = Field(pattern=_NAME)


class DeploymentPublic(BaseModel):
    key: str
    id: str
    version: int
    description: str
    variants: list[dict[str, Any]]
    routing: list[dict[str, Any]]
    default_variant: str
    created_at: int
    updated_at: int


PromptCheck = Callable[[str, int | Literal["latest"]], tuple[bool, str | None]]
"""(prompt id, version) → whether that stored prompt exists, and its model (None when it names none)."""
_VARIANT_FIELDS = frozenset(VariantFields.model_fields)
_RESERVED = GATEWAY_FIELDS | {"messages", "stream", "stream_options"}


def deployment_content(body: DeploymentUpdate, prompt_model: PromptCheck) -> dict[str, Any]:
    """The stored content of a valid body; otherwise ValidationFailed naming every broken path."""
    errors: list[FieldError] = []
    if body.variants is None:
        variants = [VariantIn(**body.model_dump(include=set(_VARIANT_FIELDS), exclude_unset=True))]
        prefix: Callable[[int], tuple[str | int, ...]] = lambda _: ("body",)  # noqa: E731
    else:
        variants = body.variants
        prefix = lambda i: ("body", "variants", i)  # noqa: E731
        for name in sorted(body.model_fields_set & _VARIANT_FIELDS):
            errors.append(
                FieldError(("body", name), "Put the variant's fields in 'variants' or at the top level, not both")
            )
    stored = [_variant(v, prefix(i), prompt_model, errors) for i, v in enumerate(variants)]
    names = [v.name for v in variants]
    for i, name in enumerate(names):
        if name in names[:i]:
            errors.append(FieldError((*prefix(i), "name"), f"Variant name '{name}' is used twice"))
    default = body.default_variant or names[0]
    if default not in names:
        errors.append(FieldError(("body", "default_variant"), f"No variant named '{default}'"))
    routing = [_rule(r, ("body", "routing", i), names, errors) for i, r in enumerate(body.routing)]
    if errors:
        raise ValidationFailed(errors)
    return {"description": body.description, "variants": stored, "routing": routing, "default_variant": default}


def _variant(
    variant: VariantIn, at: tuple[str | int, ...], prompt_model: PromptCheck, errors: list[FieldError]
) -> dict[str, Any]:
    prompt, model = variant.prompt, variant.model
    if prompt is None or (prompt.messages is None) == (prompt.id is None):
        errors.append(FieldError((*at, "prompt"), "A variant needs a prompt: either 'messages' or a stored 'id'"))
    elif prompt.id is not None:
        found, prompt_default = prompt_model(prompt.id, prompt.version)
        if not found:
            errors.append(
                FieldError((*at, "prompt", "id"), f"No stored prompt '{prompt.id}' (version {prompt.version})")
            )
        elif model is None and prompt_default is None:
            errors.append(FieldError((*at, "model"), "Field required: the stored prompt names no model"))
    elif model is None:
        errors.append(FieldError((*at, "model"), "Field required", "missing"))
    for name in sorted(_RESERVED.intersection(variant.parameters)):
        errors.append(FieldError((*at, "parameters", name), "Not a model parameter: set it as the variant's own field"))
    _check_body(variant, at, errors)
    stored = variant.model_dump(exclude_none=True, exclude_defaults=True)
    stored["name"] = variant.name
    return stored


def _check_body(variant: VariantIn, at: tuple[str | int, ...], errors: list[FieldError]) -> None:
    """The variant as the router would receive it must pass the router's own validation: messages, parameters,
    tools and response format are checked by the same types that check `/v2/router` requests."""
    messages = variant.prompt.messages if variant.prompt and variant.prompt.messages else []
    raw: dict[str, Any] = {**variant.parameters, "model": variant.model or "probe", "messages": messages}
    for name in ("tools", "response_format", "fallbacks"):
        value = getattr(variant, name)
        if value:
            raw[name] = [{"model": m} for m in value] if name == "fallbacks" else value
    try:
        validate_body(raw)
    except ValidationFailed as failed:
        for error in failed.errors:
            loc = error.loc[1:]
            if loc and loc[0] == "messages":
                where: tuple[str | int, ...] = (*at, "prompt", *loc)
            elif loc and loc[0] in variant.parameters:
                where = (*at, "parameters", *loc)
            else:
                where = (*at, *loc)
            errors.append(FieldError(where, error.msg, error.type))


_OPERATORS = ("eq", "in", "exists")


def _rule(rule: RoutingRuleIn, at: tuple[str | int, ...], names: list[str], errors: list[FieldError]) -> dict[str, Any]:
    if rule.variant not in names:
        errors.append(FieldError((*at, "variant"), f"No variant named '{rule.variant}'"))
    for field, test in rule.when.items():
        if not isinstance(test, dict):
            continue
        op = next(iter(test), None)
        value = test.get(op) if op is not None else None
        if len(test) != 1 or op not in _OPERATORS:
            message = "A condition is a value (equality), {'eq': value}, {'in': [values]} or {'exists': true|false}"
            errors.append(FieldError((*at, "when", field), message))
        elif op == "in" and not isinstance(value, list):
            errors.append(FieldError((*at, "when", field, "in"), "Input should be a valid list", "list_type"))
        elif op == "exists" and not isinstance(value, bool):
            errors.append(FieldError((*at, "when", field, "exists"), "Input should be a valid boolean", "bool_type"))
    return {"when": rule.when, "variant": rule.variant}


_SNAKE = re.compile(r"_([a-z])")


def camel_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
    """orq's `model_parameters` spelling (`maxTokens`, `topP`) of OpenAI-style parameter names."""
    return {_SNAKE.sub(lambda m: m.group(1).upper(), name): value for name, value in parameters.items()}
