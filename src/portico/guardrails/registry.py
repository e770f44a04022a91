"""Guardrail kinds by name, the spec's built-in ids, and Portkey's check ids, each mapped onto a kind.

Adding a kind is one module plus one line in `KINDS`; nothing else branches on guardrail names. `build` turns a
(kind, params) pair into a ready check and raises `GuardrailConfigError` naming what is wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from portico.guardrails.base import GuardContext, Guardrail, GuardrailConfigError, Verdict
from portico.guardrails.models import AllowedModels
from portico.guardrails.moderation import Moderation
from portico.guardrails.pii import PiiDetection
from portico.guardrails.structured import JsonSchema
from portico.guardrails.text import Contains, Length, RegexDeny, RegexMatch

Factory = Callable[[Mapping[str, Any]], Guardrail]

KINDS: dict[str, Factory] = {
    "pii": PiiDetection,
    "regex_match": RegexMatch,
    "regex_deny": RegexDeny,
    "contains": Contains,
    "length": Length,
    "json_schema": JsonSchema,
    "allowed_models": AllowedModels,
    "moderation": Moderation,
}

BUILTIN_IDS: dict[str, tuple[str, dict[str, Any]]] = {
    "orq_pii_detection": ("pii", {}),
    "orq_sexual_moderation": ("moderation", {"category": "sexual"}),
    "orq_harmful_moderation": ("moderation", {"category": "harmful"}),
}
"""The router spec's ids (BEH-GR-02) → the kind and parameters they run."""

REDACTION_ID = "portico_pii_redaction"
"""Not a check: on input, PII is replaced by placeholders and restored in the answer (`redaction.py`)."""
HEALING_ID = "portico_response_healing"
"""Not a check: the answer must be JSON; almost-JSON is repaired when unambiguous (`healing.py`)."""


def _same(params: Mapping[str, Any]) -> dict[str, Any]:
    return dict(params)


def _bounds(unit: str, low: str, high: str) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    def translate(params: Mapping[str, Any]) -> dict[str, Any]:
        return {"unit": unit, "min": params.get(low, 0), "max": params.get(high)}

    return translate


PORTKEY_CHECKS: dict[str, tuple[str, Callable[[Mapping[str, Any]], dict[str, Any]]]] = {
    "default.regexMatch": ("regex_match", _same),
    "default.contains": ("contains", _same),
    "default.wordCount": ("length", _bounds("words", "minWords", "maxWords")),
    "default.characterCount": ("length", _bounds("characters", "minCharacters", "maxCharacters")),
    "default.sentenceCount": ("length", _bounds("sentences", "minSentences", "maxSentences")),
    "default.jsonSchema": ("json_schema", _same),
    "default.modelWhitelist": ("allowed_models", _same),
    "portkey.pii": ("pii", lambda p: {"entities": p["entities"]} if "entities" in p else {}),
    "portkey.moderateContent": ("moderation", lambda p: {"category": p.get("category", "harmful")}),
}
"""Portkey's open-source check ids (`plugins/default/*`) → a local kind, with their parameter names translated."""


def build(kind: str, params: Mapping[str, Any]) -> Guardrail:
    factory = KINDS.get(kind)
    if factory is None:
        raise GuardrailConfigError(f"unknown guardrail kind '{kind}'; known: {', '.join(sorted(KINDS))}")
    if not isinstance(params, Mapping):
        raise GuardrailConfigError(f"{kind}: parameters must be a JSON object")
    return factory(params)


def build_portkey_check(check_id: str, params: Mapping[str, Any]) -> Guardrail:
    found = PORTKEY_CHECKS.get(check_id)
    if found is None:
        raise GuardrailConfigError(f"unsupported check '{check_id}'; supported: {', '.join(sorted(PORTKEY_CHECKS))}")
    kind, translate = found
    return build(kind, translate(params if isinstance(params, Mapping) else {}))


class AllOf:
    """A named combination: every part must pass; the reasons and spans of every failing part are kept."""

    kind = "all_of"

    def __init__(self, parts: tuple[Guardrail, ...]) -> None:
        self.parts = parts

    async def check(self, text: str, context: GuardContext) -> Verdict:
        failed: list[Verdict] = []
        for part in self.parts:
            verdict = await part.check(text, context)
            if not verdict.passed:
                failed.append(verdict)
        if not failed:
            return Verdict(True)
        return Verdict(False, "; ".join(v.reason for v in failed), tuple(s for v in failed for s in v.spans))
