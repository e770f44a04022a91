"""Guardrails off cost nothing: no guardrail stage runs for a request that names none. What they cost when named
(one regex guardrail, PII detection, PII redaction) is measured, not asserted here: in instructions per request
by `bench/guard_instructions_inproc.py` (a timed bound in a unit test failed on a loaded machine)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from portico.core.types import ChatRequest
from portico.guardrails.custom import build_custom
from portico.pipeline.gateway import Gateway
from portico.pipeline.guarding import GuardrailCatalog, GuardrailStage
from portico.pipeline.health import LocalHealth
from portico.pipeline.routing import Router
from portico.pipeline.served import Served
from portico.pipeline.stages import Call
from portico.providers.registry import ProviderRegistry
from portico.providers.transport import Transport

TEXT = "Please summarise the attached notes for the weekly meeting; write to jan.devries@example.nl when done. " * 3
REGEX = build_custom({"checks": [{"kind": "regex_deny", "params": {"pattern": r"\bDROP\s+TABLE\b"}}]})


def _gateway() -> Gateway:
    router = Router(LocalHealth(failure_threshold=3, cooldown_seconds=30))
    catalog = GuardrailCatalog(lambda gid: REGEX if gid == "no-sql" else None)
    gateway = Gateway(ProviderRegistry.build({}), Transport(), router, None, guardrails=catalog)
    return gateway


def _request(*guards: tuple[str, str]) -> ChatRequest:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": TEXT}]}
    return replace(ChatRequest(model="mock/echo", body=body), guardrails=guards)


def test_guardrails_off_run_no_stage_at_all() -> None:
    gateway = _gateway()
    assert any(isinstance(s, GuardrailStage) for s in gateway.stages)
    assert not gateway._asks_for_stages(_request()), "an unguarded request must skip the staged path"
    assert gateway._custom_active == (), "no guardrail stage is asked `active()` per request"


def test_a_named_guardrail_is_planned_and_an_unguarded_call_carries_none() -> None:
    plan = GuardrailCatalog().plan(_request(("orq_pii_detection", "input")))
    assert plan.inputs and Call(_request(), Served()).guard is None
