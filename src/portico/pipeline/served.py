"""What serving one request produced: `Served` (the summary headers and the call record are built from) and
`OpenedStream` (a stream committed to one target). Both stages and the stream relay fill these; neither imports
the gateway, so the gateway, the stages and the relay depend on this module and not on each other."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from portico.core.types import Attempt, ChatChunk, Usage


@dataclass(slots=True)
class Served:
    """What happened while serving one request: response headers and the call record are built from it."""

    provider: str = ""
    model: str = ""
    attempts: list[Attempt] = field(default_factory=list)
    cache_status: str | None = None
    upstream_ms: float = 0.0
    dropped_params: tuple[str, ...] = ()
    usage: Usage | None = None
    partial: bool = False
    option_index: str | None = None
    """The config position of the target that served (Portkey's `x-portkey-last-used-option-index`)."""


@dataclass(slots=True)
class OpenedStream:
    """A stream committed to one target: its first content has arrived, so no other target can take over."""

    first: list[list[ChatChunk]]
    rest: AsyncIterator[list[ChatChunk]]
