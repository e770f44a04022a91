"""What guardrails cost per request on the staged path (mock provider, no network): off, one regex guardrail,
PII detection and PII redaction. Off must cost nothing: no guardrail stage runs for a request that names none.
Run with `-s` to see the numbers (µs per request, best of several rounds)."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from portico.core.types import ChatRequest
from portico.guardrails.custom import build_custom
from portico.pipeline.gateway import Gateway, build_stages
from portico.pipeline.guarding import GuardrailCatalog, GuardrailStage, OutputGuardStage
from portico.pipeline.health import LocalHealth
from portico.pipeline.routing import Router
from portico.pipeline.served import Served
from portico.pipeline.stages import Call, Stage
from portico.providers.registry import ProviderRegistry
from portico.providers.transport import Transport

NUMBERS = "Order 12 of 2024: call 020-1234567 or pay NL91ABNA0417164300 by 12/03; version 3.1 shipped. " * 3
TEXT = "Please summarise the attached notes for the weekly meeting; write to jan.devries@example.nl when done. " * 3
REGEX = build_custom({"checks": [{"kind": "regex_deny", "params": {"pattern": r"\bDROP\s+TABLE\b"}}]})


def _gateway(stages: list[Stage] | None = None) -> Gateway:
    router = Router(LocalHealth(failure_threshold=3, cooldown_seconds=30))
    catalog = GuardrailCatalog(lambda gid: REGEX if gid == "no-sql" else None)
    gateway = Gateway(ProviderRegistry.build({}), Transport(), router, None, stages=stages, guardrails=catalog)
    return gateway


def _request(*guards: tuple[str, str]) -> ChatRequest:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": TEXT}]}
    return replace(ChatRequest(model="mock/echo", body=body), guardrails=guards)


async def _per_request_us(
    cases: dict[str, tuple[Gateway, ChatRequest]], n: int = 300, rounds: int = 7
) -> dict[str, float]:
    """Best of `rounds` per case, the cases interleaved in each round: a burst of load from the other processes on
    this shared machine then slows one round of every case, not every round of one case."""
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(rounds):
        for name, (gateway, request) in cases.items():
            started = time.perf_counter()
            for _ in range(n):
                await gateway.chat(request)
            best[name] = min(best[name], (time.perf_counter() - started) / n * 1e6)
    return best


def test_guardrails_off_run_no_stage_at_all() -> None:
    gateway = _gateway()
    assert any(isinstance(s, GuardrailStage) for s in gateway.stages)
    assert not gateway._asks_for_stages(_request()), "an unguarded request must skip the staged path"
    assert gateway._custom_active == (), "no guardrail stage is asked `active()` per request"


async def test_cost_per_request() -> None:
    guarded = _gateway()
    catalog = GuardrailCatalog()
    without = [s for s in build_stages(guarded.routed, None) if not isinstance(s, GuardrailStage | OutputGuardStage)]
    bare = _gateway(without)
    plain = _request()
    pii_free = {"messages": [{"role": "user", "content": TEXT.replace("@", " at ")}]}
    numbers = await _per_request_us(
        {
            "off (no guardrail stages in the list)": (bare, plain),
            "off (guardrail stages in the list)": (guarded, plain),
            "one regex guardrail (input)": (guarded, _request(("no-sql", "input"))),
            "orq_pii_detection (input, passes)": (
                guarded,
                replace(plain, body=pii_free, guardrails=(("orq_pii_detection", "input"),)),
            ),
            "portico_pii_redaction (input, 1 email)": (guarded, _request(("portico_pii_redaction", "input"))),
            "portico_pii_redaction (input, numbers)": (
                guarded,
                replace(
                    plain,
                    body={"messages": [{"role": "user", "content": NUMBERS}]},
                    guardrails=(("portico_pii_redaction", "input"),),
                ),
            ),
        }
    )
    base = numbers["off (guardrail stages in the list)"]
    for name, value in numbers.items():
        print(f"{name:42s} {value:7.1f} µs/request  (+{value - base:5.1f})")
    # Bounds wide enough for a shared 2-core machine; the printed numbers are the measurement.
    assert numbers["one regex guardrail (input)"] - base < 100
    assert numbers["portico_pii_redaction (input, 1 email)"] - base < 400
    plan = catalog.plan(_request(("orq_pii_detection", "input")))
    assert plan.inputs and Call(_request(), Served()).guard is None
