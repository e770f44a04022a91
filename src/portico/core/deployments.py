"""A deployment: a key, one immutable version of its variants, and the rules that pick a variant from `context`.

Versions never change once written: an update or a rollback is a new version. Everything here is built from the
stored content, which the admin API validated before writing it (`wire/deployments.py`), so nothing re-checks it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from portico.core.types import JSONObject

Operator = Literal["eq", "in", "exists"]
_MISSING = object()
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][\w.-]*)\s*\}\}")
"""A `{{ name }}` placeholder of the text engine, the same pattern `pipeline/templating.py` renders."""


@dataclass(frozen=True, slots=True)
class Condition:
    """One test on a `context` field: equal to a value, one of a list, or present (`exists: true`) / absent."""

    field: str
    op: Operator
    value: Any

    def matches(self, context: Mapping[str, Any]) -> bool:
        found = context.get(self.field, _MISSING)
        if self.op == "exists":
            return (found is not _MISSING) == bool(self.value)
        if found is _MISSING:
            return False
        if self.op == "in":
            return any(_same(found, option) for option in self.value)
        return _same(found, self.value)


def _same(a: Any, b: Any) -> bool:
    """Equality that keeps `True` apart from `1` (JSON booleans are not numbers)."""
    return isinstance(a, bool) == isinstance(b, bool) and a == b


@dataclass(frozen=True, slots=True)
class RoutingRule:
    """All conditions must hold; rules are tried in order and the first that matches picks `variant`."""

    conditions: tuple[Condition, ...]
    variant: str

    def matches(self, context: Mapping[str, Any]) -> bool:
        return all(condition.matches(context) for condition in self.conditions)


@dataclass(frozen=True, slots=True)
class Variant:
    """One way to serve the deployment: a prompt (inline messages, or a stored prompt by id and version), a model
    with its parameters, the routing of the router (fallbacks, retry, cache, timeout) and the feature slots."""

    name: str
    model: str | None
    messages: tuple[JSONObject, ...] = ()
    prompt_id: str | None = None
    prompt_version: int | Literal["latest"] = "latest"
    parameters: Mapping[str, Any] = field(default_factory=dict)
    inputs: Mapping[str, Any] = field(default_factory=dict)
    """Defaults of the template variables; a request's `inputs` win."""
    template_engine: str = "text"
    fallbacks: tuple[str, ...] = ()
    retry: Mapping[str, Any] | None = None
    cache_ttl: int | None = None
    timeout_ms: float | None = None
    tools: tuple[JSONObject, ...] | None = None
    response_format: JSONObject | None = None
    knowledge_bases: tuple[str, ...] = ()
    guardrails: tuple[tuple[str, str], ...] = ()
    placeholders: tuple[str, ...] = ()
    """The variables the inline messages name, in order: found once here, not on every request."""


@dataclass(frozen=True, slots=True)
class Deployment:
    key: str
    id: str
    version: int
    description: str
    variants: tuple[Variant, ...]
    rules: tuple[RoutingRule, ...]
    default_variant: str
    content: Mapping[str, Any]
    """The stored form this version was built from, as the admin API returns it."""
    created_at: float
    """When the deployment's first version was written."""
    updated_at: float
    """When this version was written."""

    def variant_for(self, context: Mapping[str, Any] | None) -> Variant:
        """The first rule that matches `context` picks the variant; otherwise the default one."""
        name = self.default_variant
        if context and self.rules:
            for rule in self.rules:
                if rule.matches(context):
                    name = rule.variant
                    break
        return self.variant(name)

    def variant(self, name: str) -> Variant:
        for variant in self.variants:
            if variant.name == name:
                return variant
        raise LookupError(f"deployment {self.key!r} version {self.version} has no variant {name!r}")

    @classmethod
    def from_content(
        cls, key: str, version: int, content: Mapping[str, Any], created_at: float, updated_at: float
    ) -> Deployment:
        variants = tuple(_variant(v) for v in content.get("variants") or ())
        return cls(
            key=key,
            id=str(content.get("id") or key),
            version=version,
            description=str(content.get("description") or ""),
            variants=variants,
            rules=tuple(_rule(r) for r in content.get("routing") or ()),
            default_variant=str(content.get("default_variant") or variants[0].name),
            content=content,
            created_at=created_at,
            updated_at=updated_at,
        )


def content_hash(content: Mapping[str, Any]) -> str:
    """Covers what a version says, not its id: applying the same definition twice makes no new version."""
    same = {k: v for k, v in content.items() if k != "id"}
    return hashlib.sha256(orjson.dumps(same, option=orjson.OPT_SORT_KEYS)).hexdigest()


def placeholders(messages: tuple[JSONObject, ...]) -> tuple[str, ...]:
    """The `{{ name }}` variables message text names, each once, in order of appearance."""
    found: dict[str, None] = {}
    for message in messages:
        content = message.get("content")
        texts = [content] if isinstance(content, str) else content if isinstance(content, list) else ()
        for item in texts:
            text = item.get("text") if isinstance(item, dict) else item
            if isinstance(text, str) and "{{" in text:
                found.update(dict.fromkeys(PLACEHOLDER.findall(text)))
    return tuple(found)


def _variant(data: Mapping[str, Any]) -> Variant:
    prompt = data.get("prompt") or {}
    messages = tuple(prompt.get("messages") or ())
    retry, cache, timeout = data.get("retry"), data.get("cache"), data.get("timeout")
    tools = data.get("tools")
    return Variant(
        name=str(data.get("name") or "default"),
        model=data.get("model"),
        messages=messages,
        prompt_id=prompt.get("id"),
        prompt_version=prompt.get("version") or "latest",
        parameters=dict(data.get("parameters") or {}),
        inputs=dict(data.get("inputs") or {}),
        template_engine=str(data.get("template_engine") or prompt.get("template_engine") or "text"),
        fallbacks=tuple(data.get("fallbacks") or ()),
        retry=dict(retry) if retry else None,
        cache_ttl=int(cache["ttl"]) if cache else None,
        timeout_ms=float(timeout["call_timeout"]) if timeout else None,
        tools=tuple(tools) if tools is not None else None,
        response_format=data.get("response_format"),
        knowledge_bases=tuple(data.get("knowledge_bases") or ()),
        guardrails=tuple((g["id"], g["execute_on"]) for g in data.get("guardrails") or ()),
        placeholders=placeholders(messages),
    )


def _rule(data: Mapping[str, Any]) -> RoutingRule:
    conditions = []
    for name, test in (data.get("when") or {}).items():
        if isinstance(test, dict) and len(test) == 1 and next(iter(test)) in ("eq", "in", "exists"):
            op, value = next(iter(test.items()))
            conditions.append(Condition(name, op, value))
        else:
            conditions.append(Condition(name, "eq", test))
    return RoutingRule(tuple(conditions), str(data["variant"]))
