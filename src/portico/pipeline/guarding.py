"""The guardrail stage: input checks before the cache and the upstream, output checks on the answer.

No guardrail is available yet, so any `guardrails` entry answers 400 `unknown_guardrail` rather than being
silently ignored; the guardrails work replaces the check and keeps this stage's place in the list.
"""

from __future__ import annotations

from portico.core.errors import RequestError
from portico.core.types import ChatResult
from portico.pipeline.stages import Call, Stage


class GuardrailStage(Stage):
    name = "guardrails"
    triggers = ("guardrails",)

    async def before(self, call: Call) -> ChatResult | None:
        guardrail_id = call.request.guardrails[0][0]
        raise RequestError(
            f"Guardrail '{guardrail_id}' is not available on this gateway.",
            code="unknown_guardrail",
            param="guardrails",
        )
