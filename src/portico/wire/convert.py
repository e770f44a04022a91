"""Wire → core: validate a decoded chat body and turn it into a `ChatRequest`; the one place both shapes meet.

Deprecated spellings are normalised here (CHECKLIST AMB-04/05/06/40): the top-level value wins over `orq.*`,
`contact` stands in for `identity`, `orq.inputs` merges under `variables`, an array `load_balancer` is weight_based.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from portico.core.errors import FieldError, ValidationFailed
from portico.core.knowledge import RerankSettings, SearchQuery
from portico.core.types import (
    CacheOptions,
    ChatRequest,
    Dialect,
    KnowledgeLookup,
    RetryPolicy,
    RoutingPlan,
    Target,
    TraceInfo,
)
from portico.wire.openai_chat import (
    GATEWAY_FIELDS,
    ChatCompletionRequest,
    Identity,
    InputItem,
    KnowledgeQuery,
    LoadBalancer,
    Orq,
    ThinkingEnabled,
    WeightedModel,
)
from portico.wire.portkey import PortkeyHeaders

_NO_PORTKEY = PortkeyHeaders()
_NO_ORQ = Orq()
"""Shared, read-only stand-ins for absent headers and an absent `orq` object (built once, not per request)."""
_PLAIN = frozenset({"model", "stream"})
"""The only gateway fields of a request that asks for no routing, caching, templating or tracing."""
_LOC = re.compile(r"\[(\d+)\]|\.([^.\[]+)")


def field_error(exc: msgspec.ValidationError) -> FieldError:
    """msgspec reports `... - at `$.messages[0].role``; turn that into FastAPI's `loc` list."""
    text = str(exc)
    message, sep, where = text.rpartition(" - at `")
    if not sep:
        message, where = text, "$"
    path: list[str | int] = ["body"]
    for index, key in _LOC.findall(where.rstrip("`").removeprefix("$")):
        path.append(int(index) if index else key)
    missing = re.match(r"Object missing required field `([^`]+)`", message)
    if missing:
        path.append(missing.group(1))
        return FieldError(tuple(path), "Field required", "missing")
    return FieldError(tuple(path), message, _error_type(message))


def _error_type(message: str) -> str:
    if message.startswith("Expected `"):
        return "type_error" if " got `" in message and "<" not in message and ">" not in message else "value_error"
    if message.startswith("Invalid enum value") or message.startswith("Invalid value"):
        return "enum"
    return "value_error"


def validate_body(raw: Any) -> ChatCompletionRequest:
    if not isinstance(raw, dict):
        raise ValidationFailed([FieldError(("body",), "The request body must be a JSON object.", "type_error")])
    try:
        return msgspec.convert(raw, ChatCompletionRequest)
    except msgspec.ValidationError as exc:
        raise ValidationFailed([field_error(exc)]) from None


def check_rules(req: ChatCompletionRequest, dialect: Dialect) -> None:
    """Constraints the schema keywords cannot say, per endpoint family (CHECKLIST AMB-17/23/25/29/31/35/39/56)."""
    errors: list[FieldError] = []
    add = errors.append
    if not req.model:
        add(FieldError(("body", "model"), "Field required", "missing"))
    if not req.messages and (req.prompt or (req.orq.prompt if req.orq else None)) is None:
        add(FieldError(("body", "messages"), "List should have at least 1 item", "too_short"))
    if req.top_logprobs and not req.logprobs:
        add(FieldError(("body", "top_logprobs"), "top_logprobs requires logprobs to be true", "value_error"))
    if req.add_generation_prompt is True and req.continue_final_message is True:
        add(
            FieldError(
                ("body", "continue_final_message"), "cannot be combined with add_generation_prompt", "value_error"
            )
        )
    if dialect == "orq":
        _check_orq(req, add)
    else:
        _check_openai(req, add)
    if errors:
        raise ValidationFailed(errors)


def _check_orq(req: ChatCompletionRequest, add: Any) -> None:
    if isinstance(req.stop, list) and len(req.stop) > 4:
        add(FieldError(("body", "stop"), "List should have at most 4 items", "too_long"))
    if isinstance(req.thinking, ThinkingEnabled) and req.thinking.budget_tokens is None:
        add(FieldError(("body", "thinking", "budget_tokens"), "Field required", "missing"))
    if req.metadata is not None:
        if len(req.metadata) > 16:
            add(FieldError(("body", "metadata"), "At most 16 key-value pairs", "too_long"))
        for key, value in req.metadata.items():
            if len(key) > 64:
                add(FieldError(("body", "metadata", key), "Keys are at most 64 characters", "too_long"))
            if not isinstance(value, str):
                add(FieldError(("body", "metadata", key), "Values must be strings", "string_type"))
            elif len(value) > 512:
                add(FieldError(("body", "metadata", key), "Values are at most 512 characters", "too_long"))
    for i, message in enumerate(req.messages):
        content = getattr(message, "content", None)
        if isinstance(content, list):
            for j, part in enumerate(content):
                spec = getattr(part, "file", None)
                if spec is not None and (spec.file_data is None) == (spec.uri is None):
                    loc = ("body", "messages", i, "content", j, "file")
                    add(FieldError(loc, "Must contain either file_data or uri, but not both", "value_error"))


def _check_openai(req: ChatCompletionRequest, add: Any) -> None:
    if req.n is not None and req.n > 128:
        add(FieldError(("body", "n"), "Input should be less than or equal to 128", "less_than_equal"))
    frequency, presence = req.frequency_penalty, req.presence_penalty
    if frequency is not None and not -2 <= frequency <= 2:
        add(FieldError(("body", "frequency_penalty"), "Input should be between -2 and 2", "value_error"))
    if presence is not None and not -2 <= presence <= 2:
        add(FieldError(("body", "presence_penalty"), "Input should be between -2 and 2", "value_error"))
    for i, message in enumerate(req.messages):
        if getattr(message, "tool_call_id", "") is None:
            add(FieldError(("body", "messages", i, "tool_call_id"), "Input should be a valid string", "string_type"))


def build_request(
    raw: dict[str, Any],
    req: ChatCompletionRequest,
    *,
    dialect: Dialect,
    client_key: str | None,
    portkey: PortkeyHeaders | None = None,
) -> ChatRequest:
    """`portkey` headers add trace ids, metadata (body keys win, AMB-65) and cache namespace/refresh.

    `raw` is consumed: less its gateway fields (usually just `model`), it becomes the request's body; copying
    it key by key was a loop over every field of every request."""
    body = raw
    consumed = GATEWAY_FIELDS.intersection(raw)
    for name in consumed:
        del body[name]
    stream = bool(req.stream)
    if not stream:
        body.pop("stream_options", None)
    if portkey is None and consumed <= _PLAIN:  # most requests: no gateway feature to normalise
        return ChatRequest(
            req.model or "",
            body,
            stream,
            _include_usage(req, dialect),
            dialect,
            client_key=client_key,
        )
    portkey = portkey or _NO_PORTKEY
    orq = req.orq or _NO_ORQ
    cache_spec = req.cache or orq.cache
    cache = None
    if cache_spec is not None:
        cache = CacheOptions(int(cache_spec.ttl), portkey.cache_namespace, portkey.cache_force_refresh)
    identity = req.identity or req.contact or orq.identity or orq.contact
    variables = _variables(req, orq)
    metadata = {**(portkey.metadata or {}), **(req.metadata or {})}
    thread = req.thread or orq.thread
    prompt = req.prompt or orq.prompt
    trace = portkey.trace
    knowledge = req.knowledge_bases or orq.knowledge_bases
    return ChatRequest(
        model=req.model or "",
        body=body,
        stream=stream,
        include_usage=_include_usage(req, dialect),
        dialect=dialect,
        routing=routing_plan(req, orq),
        cache=cache,
        trace=TraceInfo(
            trace_id=trace.get("trace_id"),
            span_id=trace.get("span_id"),
            parent_span_id=trace.get("parent_span_id"),
            name=req.name or orq.name or trace.get("span_name"),
            metadata=metadata,
            identity=_identity(identity),
            thread=msgspec.to_builtins(thread) if thread else None,
        ),
        client_key=client_key,
        variables=variables,
        template_engine=req.template_engine,
        guardrails=tuple((g.id, g.execute_on) for g in req.guardrails) if req.guardrails else (),
        prompt_id=prompt.id if prompt else None,
        prompt_version=prompt.version if prompt else "latest",
        knowledge=knowledge_lookups(knowledge, None if req.knowledge_bases else "orq") if knowledge else (),
        pii_values=_pii_values(orq.inputs) if isinstance(orq.inputs, list) else (),
    )


def knowledge_lookups(entries: list[KnowledgeQuery], container: str | None = None) -> tuple[KnowledgeLookup, ...]:
    """The `knowledge_bases` entries as the retrieval stage searches them; `container` "orq" when they came from the
    deprecated `orq.knowledge_bases` (errors then name that path). Unset fields stay None: the base decides
    (AMB-43). `filter_by` is kept as sent; the stage checks it against the filter grammar before any search."""
    prefix: tuple[str | int, ...] = ("body", container, "knowledge_bases") if container else ("body", "knowledge_bases")
    lookups = []
    for index, entry in enumerate(entries):
        options = entry.search_options
        rerank = entry.rerank_config
        search = SearchQuery(
            text=entry.query or "",
            top_k=entry.top_k,
            threshold=entry.threshold,
            search_type=entry.search_type,
            filter=entry.filter_by,
            include_vectors=bool(options and options.include_vectors),
            include_metadata=not options or options.include_metadata is not False,
            include_scores=not options or options.include_scores is not False,
            rerank=RerankSettings(rerank.model, rerank.threshold, rerank.top_k) if rerank is not None else None,
            agentic_model=entry.agentic_rag_config.model if entry.agentic_rag_config is not None else None,
        )
        lookups.append(KnowledgeLookup(entry.knowledge_id, search, (*prefix, index)))
    return tuple(lookups)


def _include_usage(req: ChatCompletionRequest, dialect: Dialect) -> bool:
    """/v1 follows vLLM (`stream_options: {}` means usage); /v2 only an explicit true (CHECKLIST AMB-27)."""
    options = req.stream_options
    if not req.stream or options is None:
        return False
    if dialect == "orq":
        return options.include_usage is True
    return options.include_usage is not False


def routing_plan(req: ChatCompletionRequest, orq: Orq) -> RoutingPlan | None:
    """orq semantics: the weighted pick (or `model`) is the primary, then `fallbacks` in order (AMB-11..14)."""
    retry_spec = req.retry or orq.retry
    fallbacks = req.fallbacks or orq.fallbacks or []
    balancer = req.load_balancer or orq.load_balancer
    timeout = req.timeout or orq.timeout
    if retry_spec is None and not fallbacks and balancer is None and timeout is None:
        return None
    retry = None
    if retry_spec is not None:
        retry = RetryPolicy(count=int(retry_spec.count), on_codes=frozenset(int(c) for c in retry_spec.on_codes))
    primary: Target | RoutingPlan = Target(model=req.model or "")
    if balancer is not None:
        members: list[WeightedModel] = balancer.models if isinstance(balancer, LoadBalancer) else balancer
        primary = RoutingPlan(
            mode="loadbalance", targets=tuple(Target(model=m.model, weight=m.weight) for m in members)
        )
    targets = (primary, *(Target(model=f.model) for f in fallbacks))
    return RoutingPlan(
        mode="fallback" if len(targets) > 1 else "single",
        targets=targets,
        retry=retry,
        timeout_ms=timeout.call_timeout if timeout else None,
        on_status_codes=frozenset(int(c) for c in req.fallback_on_codes) if req.fallback_on_codes else None,
    )


def _variables(req: ChatCompletionRequest, orq: Orq) -> dict[str, Any] | None:
    """`orq.inputs` merged under `variables` (AMB-06). Values marked `is_pii` are also kept apart
    (`_pii_values`) so that the call record masks them (BEH-VAR-05)."""
    inputs = orq.inputs
    if inputs is None and req.variables is None:
        return None
    merged: dict[str, Any] = {}
    if isinstance(inputs, list):
        for item in inputs:
            merged[item.key] = item.value
    elif inputs:
        merged.update(inputs)
    merged.update(req.variables or {})
    return merged


def _pii_values(inputs: list[InputItem]) -> tuple[str, ...]:
    values = []
    for item in inputs:
        if item.is_pii and item.value not in (None, ""):
            values.append(item.value if isinstance(item.value, str) else msgspec.json.encode(item.value).decode())
    return tuple(values)


def _identity(identity: Identity | None) -> dict[str, Any] | None:
    if identity is None:
        return None
    data: dict[str, Any] = msgspec.to_builtins(identity)
    meta = data.get("metadata")
    if isinstance(meta, list):  # described as a hash, typed as a list of objects (AMB-40): merge for storage
        merged: dict[str, Any] = {}
        for item in meta:
            merged.update(item)
        data["metadata"] = merged
    return data
