"""Custom guardrails as the admin API stores them: a named combination of built-in kinds with parameters
(`{"checks": [{"kind", "params"}]}`, all must pass) or a webhook (`{"webhook": {url, timeout_ms, on_error}}`),
and `on_fail`: deny (default) or retry (an output violation asks the model once more).

`build_custom` is the one reading of a spec: the admin API calls it to refuse a bad spec before storing it, the
request path to compile a stored one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from portico.guardrails.base import GuardContext, Guardrail, GuardrailConfigError, Verdict
from portico.guardrails.moderation import Moderator, ProviderModeration
from portico.guardrails.registry import AllOf, build
from portico.guardrails.webhook import Poster, Webhook


class Custom:
    """A stored guardrail: its check, and what an output violation does (`on_fail` deny, or retry: ask the model
    once more and check the new answer)."""

    kind = "custom"

    def __init__(self, check: Guardrail, on_fail: str) -> None:
        self.inner = check
        self.retry = on_fail == "retry"

    async def check(self, text: str, context: GuardContext) -> Verdict:
        return await self.inner.check(text, context)


def build_custom(spec: Mapping[str, Any], post: Poster | None = None, moderate: Moderator | None = None) -> Guardrail:
    on_fail = spec.get("on_fail", "deny")
    if on_fail not in ("deny", "retry"):
        raise GuardrailConfigError("'on_fail' must be deny or retry")
    return Custom(_check(spec, post, moderate), on_fail)


def _check(spec: Mapping[str, Any], post: Poster | None, moderate: Moderator | None) -> Guardrail:
    checks, webhook = spec.get("checks"), spec.get("webhook")
    if (checks is None) == (webhook is None):
        raise GuardrailConfigError("a guardrail has either 'checks' (built-in kinds) or a 'webhook'")
    if webhook is not None:
        if not isinstance(webhook, dict):
            raise GuardrailConfigError("'webhook' must be an object {url, timeout_ms, on_error, headers}")
        return Webhook(webhook, post)
    if not isinstance(checks, list) or not checks:
        raise GuardrailConfigError("'checks' must be a non-empty list of {kind, params}")
    parts: list[Guardrail] = []
    for index, check in enumerate(checks):
        if not isinstance(check, dict) or not isinstance(check.get("kind"), str):
            raise GuardrailConfigError(f"checks[{index}] must be an object with a string 'kind'")
        params = check.get("params") or {}
        try:
            if check["kind"] == "moderation" and isinstance(params, dict) and "provider" in params:
                parts.append(ProviderModeration(params, moderate))
            else:
                parts.append(build(check["kind"], params))
        except GuardrailConfigError as exc:
            raise GuardrailConfigError(f"checks[{index}]: {exc}") from None
    return parts[0] if len(parts) == 1 else AllOf(tuple(parts))
