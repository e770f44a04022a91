"""The stage seam: what a step of the request path implements, and the per-request `Call` the steps share.

A stage wraps the routed call like a middleware layer: `before` runs in list order and may change the request or
answer it outright (a cache hit); the `after` hooks run in reverse order over the stages whose `before` ran. A
stage that is not configured for a request answers `active() → False` and costs that one call, nothing more.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from portico.core.types import ChatChunk, ChatRequest, ChatResult
from portico.pipeline.served import Served

Chunks = AsyncIterator[list[ChatChunk]]


@dataclass(slots=True)
class Call:
    """One request on its way through the stages: the (possibly rewritten) request, what serving it produced,
    and the little state a stage hands from its `before` to its `after`."""

    request: ChatRequest
    served: Served
    cache_key: str | None = None
    guard: Any = None
    """The guardrail stages' plan for this request (`guarding.GuardPlan`), shared by the input and output stage."""


class Stage:
    """Base of every stage; the defaults do nothing, so a stage overrides only the hooks it needs."""

    name = "stage"
    triggers: tuple[str, ...] = ()
    """`ChatRequest` attributes that, when any is truthy, make the stage active. The gateway reads them all in one
    C call per request (`operator.attrgetter`), so unconfigured stages cost nothing measurable; a stage whose
    activity is not a plain attribute test overrides `active` instead, and is asked on every request."""

    def active(self, request: ChatRequest) -> bool:
        """Whether this request asks for the stage."""
        for attribute in self.triggers:  # noqa: SIM110 - no generator for a one- or two-name check
            if getattr(request, attribute):
                return True
        return False

    async def before(self, call: Call) -> ChatResult | None:
        """Run before the routed call; may replace `call.request`. A result answers the request: the routed
        call and every later stage are skipped."""
        return None

    async def after(self, call: Call, result: ChatResult) -> ChatResult:
        """Run on a JSON answer, innermost stage first; may replace the result or raise to refuse it."""
        return result

    def after_stream(self, call: Call, chunks: Chunks) -> Chunks:
        """Wrap a committed stream, innermost stage first. Called once per stream; the wrapper sees every batch."""
        return chunks
