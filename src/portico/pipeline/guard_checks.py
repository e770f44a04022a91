"""Which guardrails a request asks for (`GuardrailCatalog.plan` → `GuardPlan`) and running them (`run_checks`):
every verdict is recorded, Portkey hooks also in Portkey's `hook_results` shape, and `refuse` builds the error.

Guardrail ids resolve to the spec's built-ins first, then to admin-stored guardrails; an unknown id is a 400
`unknown_guardrail` before anything runs. A recorded verdict names entity kinds, never the text that matched.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from portico.core.errors import GuardrailViolation, RequestError
from portico.core.types import ChatRequest, GuardrailHook
from portico.guardrails.base import GuardContext, Guardrail, GuardrailConfigError, Phase, Span, Verdict
from portico.guardrails.moderation import Moderator, ProviderModeration
from portico.guardrails.redaction import Redactor
from portico.guardrails.registry import BUILTIN_IDS, HEALING_ID, REDACTION_ID, build, build_portkey_check

StoredGuardrails = Callable[[str], Guardrail | None]


@dataclass(frozen=True, slots=True)
class Use:
    """One guardrail applied to one phase of a request. A Portkey hook carries its checks as `parts` (each is
    reported on its own in `hook_results`); `deny` False only records a failure (Portkey's default)."""

    id: str
    phase: Phase
    check: Guardrail | None
    deny: bool = True
    parts: tuple[tuple[str, Guardrail], ...] = ()
    retry: bool = False
    """A stored guardrail's `on_fail: retry`: a refused JSON answer is asked for once more."""


@dataclass(slots=True)
class GuardPlan:
    inputs: tuple[Use, ...]
    outputs: tuple[Use, ...]
    redactor: Redactor | None = None
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    heal: bool = False
    """`portico_response_healing` was asked for: the answer must be JSON, repaired when that is unambiguous."""
    portkey: bool = False
    """Hooks from `x-portkey-config`: results go to `hook_results`, a refusal is 446 and a failure 246."""
    hook_results: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {"before_request_hooks": [], "after_request_hooks": []}
    )
    stream_hooks: tuple[Use, ...] = ()
    """Portkey output hooks of a stream: checked once the answer was sent, so they only report (Portkey's rule)."""
    frames: bool = False
    """The stream carries `hook_results` frames (the client turned Portkey's strict OpenAI compliance off)."""


class GuardrailCatalog:
    """Guardrail id → check: the spec's built-in ids, then the admin-stored custom guardrails. Built-ins are
    compiled once per process; stored ones come compiled from their namespace."""

    def __init__(
        self,
        stored: StoredGuardrails | None = None,
        moderation: Mapping[str, Any] | None = None,
        moderate: Moderator | None = None,
    ) -> None:
        """`moderation` (`guardrails.moderation` of the config): the built-in moderation ids call that provider's
        `/moderations` through `moderate` instead of using the local word lists."""
        self.stored = stored
        self.moderation = moderation
        self.moderate = moderate
        self._builtins: dict[str, Guardrail] = {}

    def resolve(self, guardrail_id: str) -> Guardrail:
        found = self._builtins.get(guardrail_id)
        if found is not None:
            return found
        spec = BUILTIN_IDS.get(guardrail_id)
        if spec is not None:
            kind, params = spec
            if kind == "moderation" and self.moderation is not None:
                found = ProviderModeration({**params, **self.moderation}, self.moderate)
            else:
                found = build(kind, params)
            self._builtins[guardrail_id] = found
            return found
        custom = self.stored(guardrail_id) if self.stored is not None else None
        if custom is None:
            raise RequestError(
                f"Guardrail '{guardrail_id}' is not available on this gateway: use one of "
                f"{', '.join([*BUILTIN_IDS, REDACTION_ID, HEALING_ID])} or the key of a stored guardrail.",
                code="unknown_guardrail",
                param="guardrails",
            )
        return custom

    def plan(self, request: ChatRequest) -> GuardPlan:
        inputs: list[Use] = []
        outputs: list[Use] = []
        redactor = None
        heal = False
        for guardrail_id, phase in request.guardrails:
            if guardrail_id == REDACTION_ID:
                redactor = Redactor()
                continue
            if guardrail_id == HEALING_ID:
                heal = True
                continue
            check = self.resolve(guardrail_id)
            retry = bool(getattr(check, "retry", False))
            use = Use(guardrail_id, "output" if phase == "output" else "input", check, retry=retry)
            (outputs if use.phase == "output" else inputs).append(use)
        for hook in request.hooks:
            use = self._hook(hook)
            (outputs if use.phase == "output" else inputs).append(use)
        plan = GuardPlan(tuple(inputs), tuple(outputs), redactor, heal=heal, portkey=bool(request.hooks))
        if plan.portkey and request.stream:  # a hook is a `Use` without its own check
            plan.stream_hooks = tuple(u for u in outputs if u.check is None)
            plan.outputs = tuple(u for u in outputs if u.check is not None)
            plan.frames = request.hook_frames
        return plan

    def _hook(self, hook: GuardrailHook) -> Use:
        if hook.ref is not None:  # a guardrail named by id, reported in `hook_results` like an inline hook
            return Use(hook.id, hook.phase, None, hook.deny, ((hook.ref, self.resolve(hook.ref)),))
        try:
            parts = tuple((check_id, build_portkey_check(check_id, params)) for check_id, params in hook.checks)
        except GuardrailConfigError as exc:
            raise RequestError(
                f"x-portkey-config hook '{hook.id}': {exc}", code="invalid_config", param="x-portkey-config"
            ) from None
        return Use(hook.id, hook.phase, None, hook.deny, parts)


def input_text(body: dict[str, Any]) -> str:
    """The text of every message, one per line: what input checks read."""
    lines: list[str] = []
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            lines.append(content)
        elif isinstance(content, list):
            lines.extend(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return "\n".join(lines)


def output_text(body: dict[str, Any]) -> str:
    parts = []
    for choice in body.get("choices") or ():
        content = (choice.get("message") or {}).get("content") if isinstance(choice, dict) else None
        if isinstance(content, str):
            parts.append(content)
    return "\n".join(parts)


async def run_checks(plan: GuardPlan, uses: tuple[Use, ...], text: str, request: ChatRequest) -> list[Use]:
    """Run each check, record its verdict; the uses that failed, in order."""
    failed: list[Use] = []
    for use in uses:
        context = GuardContext(use.phase, request.model, request.trace.metadata)
        started = time.perf_counter()
        try:
            if use.check is not None:
                verdict = await use.check.check(text, context)
            else:
                verdict = await _run_hook(plan, use, text, context, started)
        except GuardrailConfigError as exc:
            raise RequestError(f"Guardrail '{use.id}': {exc}", code="invalid_guardrail", param="guardrails") from None
        plan.verdicts.append(_record(use, verdict))
        if not verdict.passed:
            failed.append(use)
    return failed


async def _run_hook(plan: GuardPlan, use: Use, text: str, context: GuardContext, started: float) -> Verdict:
    """A Portkey hook: each check is reported in `hook_results` (Portkey's `HookResult` shape); it passes when
    every check does."""
    checks: list[dict[str, Any]] = []
    reasons: list[str] = []
    spans: list[Span] = []
    for check_id, part in use.parts:
        began = time.perf_counter()
        verdict = await part.check(text, context)
        data: dict[str, Any] = {"explanation": verdict.reason or "passed"}
        if verdict.spans:
            data["found"] = sorted({s.kind for s in verdict.spans})
        elapsed = round((time.perf_counter() - began) * 1000, 3)
        checks.append({"id": check_id, "verdict": verdict.passed, "data": data, "execution_time": elapsed})
        if not verdict.passed:
            reasons.append(f"{check_id}: {verdict.reason}")
            spans.extend(verdict.spans)
    passed = not reasons
    key = "before_request_hooks" if use.phase == "input" else "after_request_hooks"
    plan.hook_results[key].append(
        {
            "id": use.id,
            "type": "guardrail",
            "verdict": passed,
            "deny": use.deny,
            "checks": checks,
            "execution_time": round((time.perf_counter() - started) * 1000, 3),
        }
    )
    return Verdict(passed, "; ".join(reasons), tuple(spans))


def _record(use: Use, verdict: Verdict) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": use.id, "phase": use.phase, "passed": verdict.passed}
    if verdict.reason:  # a pass with a reason failed open (a webhook or moderation call that did not answer)
        entry["reason"] = verdict.reason
    if not verdict.passed:
        entry["reason"] = verdict.reason
        entry["found"] = sorted({s.kind for s in verdict.spans})
    return entry


def refuse(plan: GuardPlan, failed: list[Use]) -> GuardrailViolation | None:
    """The error for the first denying failure; None when every failure only reports."""
    denied = [u for u in failed if u.deny]
    if not denied:
        return None
    first = denied[0]
    if plan.portkey:  # Portkey's own answer to a denied hook (`hooks/index.ts` callers): 446 `hooks_failed`
        error = GuardrailViolation(
            "The guardrail checks defined in the config failed. You can find more information in the "
            "`hook_results` object.",
            guardrail=first.id,
            status=446,
            hook_results=plan.hook_results,
        )
        error.type = "hooks_failed"
        return error
    reason = next(v["reason"] for v in plan.verdicts if v["id"] == first.id and not v["passed"])
    where = "input" if first.phase == "input" else "answer"
    return GuardrailViolation(f"Guardrail '{first.id}' refused the {where}: {reason}.", guardrail=first.id)
