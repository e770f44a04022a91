"""The variables stage: render the request's `variables` into its messages (engines in `templating.py`).

Runs after a stored prompt or deployment contributed its messages, so both the stored and the request's own
messages are rendered, and before retrieval, guardrails and the cache, which see the final text.
"""

from __future__ import annotations

from dataclasses import replace

from portico.core.types import ChatResult
from portico.pipeline.stages import Call, Stage
from portico.pipeline.templating import render_messages


class RenderStage(Stage):
    name = "variables"
    triggers = ("variables",)

    async def before(self, call: Call) -> ChatResult | None:
        request = call.request
        if request.variables:
            call.request = replace(
                request, body=render_messages(request.body, request.variables, request.template_engine or "text")
            )
        return None
