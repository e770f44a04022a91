"""The guardrail seam: `Guardrail` checks one text in its `GuardContext` and answers a `Verdict`.

A check never raises for a bad text (that is a failed verdict); it raises `GuardrailConfigError` only when its own
parameters cannot work, which the admin API and the request path turn into a 400.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Phase = Literal["input", "output"]


@dataclass(frozen=True, slots=True)
class Span:
    """Where a check found something: `text[start:end]` is of `kind` (an entity, a word, a pattern)."""

    start: int
    end: int
    kind: str


@dataclass(frozen=True, slots=True)
class Verdict:
    passed: bool
    reason: str = ""
    spans: tuple[Span, ...] = ()


PASSED = Verdict(True)


@dataclass(frozen=True, slots=True)
class GuardContext:
    """What a check may look at besides its text: the phase, the model asked for, and the request's metadata."""

    phase: Phase
    model: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)


class Guardrail(Protocol):
    """One check. `check` is async so that a webhook or a moderation provider fits the same seam."""

    kind: str

    async def check(self, text: str, context: GuardContext) -> Verdict: ...


class GuardrailConfigError(ValueError):
    """A guardrail's parameters are unusable (a bad regex, an unknown entity); the message says which."""
