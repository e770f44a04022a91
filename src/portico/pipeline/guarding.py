"""The guardrail stages: `GuardrailStage` checks (or redacts) the input before the cache and the upstream and puts
redacted PII back into the answer; `OutputGuardStage`, placed after the cache stage, checks (and heals) the answer
before the cache may store it (its `after` runs first, see `pipeline/__init__.py`).

A refused input never reaches the upstream: 400 `guardrail_violation` whose `code` names the guardrail (CHECKLIST
AMB-16); Portkey hooks answer Portkey's 446 `hooks_failed` with `hook_results`, or 246 when a check failed without
denying. A refused JSON answer is the same 400. A stream with output guardrails (or healing) is held back whole,
checked, then sent, or ended with one error event (its headers are already out); a guardrail stored with
`on_fail: retry` asks the model once more instead (JSON or stream). Portkey's hook frames on streams, and why its
output hooks only report there, are in `guard_streams.py`. Every verdict lands on `served.guardrails`, which the
call record keeps.
"""

from __future__ import annotations

from dataclasses import replace

from portico.core.errors import GuardrailViolation
from portico.core.types import ChatResult
from portico.guardrails.registry import REDACTION_ID
from portico.pipeline.guard_checks import GuardPlan, GuardrailCatalog, input_text, output_text, refuse, run_checks
from portico.pipeline.guard_streams import Again, Texts, checked_stream, collected, needs_frames, portkey_stream
from portico.pipeline.rewriting import healed_result, response_schema, restore_body, restore_stream
from portico.pipeline.stages import Call, Chunks, Stage

__all__ = ["Again", "GuardrailCatalog", "GuardrailStage", "OutputGuardStage"]


class GuardrailStage(Stage):
    name = "guardrails"
    triggers = ("guardrails", "hooks")

    def __init__(self, catalog: GuardrailCatalog | None = None) -> None:
        self.catalog = catalog or GuardrailCatalog()

    async def before(self, call: Call) -> ChatResult | None:
        plan = call.guard = self.catalog.plan(call.request)
        call.served.guardrails = plan.verdicts
        if plan.inputs:
            failed = await run_checks(plan, plan.inputs, input_text(call.request.body), call.request)
            if (error := refuse(plan, failed)) is not None:
                raise error
            if plan.portkey and failed:  # known before a stream's headers: its status is Portkey's 246 too
                call.served.status = 246
        if plan.redactor is not None:
            messages = plan.redactor.redact_messages(call.request.body.get("messages") or [])
            call.request = replace(call.request, body={**call.request.body, "messages": messages})
            call.served.redacted = plan.redactor.by_value
            # recorded by kind and count only: the values themselves never leave the redactor
            counts = dict(sorted(plan.redactor.counts.items()))
            plan.verdicts.append({"id": REDACTION_ID, "phase": "input", "passed": True, "redacted": counts})
        return None

    async def after(self, call: Call, result: ChatResult) -> ChatResult:
        plan: GuardPlan = call.guard
        if _answered_by_cache(call, plan):  # the output stage sits below the cache and did not see this answer
            result = await checked_result(call, result)
        restore = plan.redactor is not None and bool(plan.redactor.by_placeholder)
        if not restore and not plan.portkey:
            return result
        body = restore_body(result.body, plan.redactor) if plan.redactor is not None and restore else result.body
        if plan.portkey:  # Portkey reports every hook with the answer; a failed, non-denying check makes it a 246
            body = {**body, "hook_results": plan.hook_results}
            if not all(v["passed"] for v in plan.verdicts):
                call.served.status = 246
        return ChatResult(body, None, result.provider, result.model, result.dropped_params, result.usage)

    def after_stream(self, call: Call, chunks: Chunks) -> Chunks:
        plan: GuardPlan = call.guard
        if _answered_by_cache(call, plan):
            chunks = checked_stream(call, chunks)
        texts: Texts = {}
        if plan.stream_hooks:  # Portkey's output hooks read the answer as the model wrote it
            chunks = collected(chunks, texts)
        if plan.redactor is not None and plan.redactor.by_placeholder:
            chunks = restore_stream(chunks, plan.redactor)
        return portkey_stream(call, chunks, texts) if needs_frames(plan) else chunks


class OutputGuardStage(Stage):
    """Checks the answer; sits after the cache stage so that its `after` sees an answer before the cache does.
    `again` calls the model once more for a guardrail stored with `on_fail: retry` (JSON answers only)."""

    name = "output_guardrails"
    triggers = ("guardrails", "hooks")  # plain triggers keep it out of the per-request `active` calls

    def __init__(self, again: Again | None = None) -> None:
        self.again = again

    async def after(self, call: Call, result: ChatResult) -> ChatResult:
        plan: GuardPlan = call.guard
        if not plan.outputs and not plan.heal:
            return result
        try:
            return await checked_result(call, result)
        except GuardrailViolation as refused:
            retry = self.again is not None and any(u.retry and u.id == refused.code for u in plan.outputs)
            if not retry or self.again is None:
                raise
        return await checked_result(call, await self.again(call.request, call.served))

    def after_stream(self, call: Call, chunks: Chunks) -> Chunks:
        plan: GuardPlan = call.guard
        return checked_stream(call, chunks, self.again, checked_result) if plan.outputs or plan.heal else chunks


def _answered_by_cache(call: Call, plan: GuardPlan) -> bool:
    """A cached answer may have been stored by a request with other guardrails: it is checked like a fresh one."""
    return call.served.cache_status == "HIT" and bool(plan.outputs or plan.heal)


async def checked_result(call: Call, result: ChatResult) -> ChatResult:
    plan: GuardPlan = call.guard
    if plan.heal:
        result = healed_result(result, response_schema(call.request.body))
    failed = await run_checks(plan, plan.outputs, output_text(result.body), call.request)
    if (error := refuse(plan, failed)) is not None:
        raise error
    return result
