"""What serving one request produced: `Served` (the summary headers and the call record are built from) and
`OpenedStream` (a stream committed to one target). Both stages and the stream relay fill these; neither imports
the gateway, so the gateway, the stages and the relay depend on this module and not on each other."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from portico.core.knowledge import Retrieval
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
    saved_usage: Usage | None = None
    """A cache hit: the usage of the answer it replayed (what the call would have cost; priced in the record)."""
    status: int = 200
    """The status of a successful JSON answer: Portkey's 246 when a guardrail hook failed without denying."""
    guardrails: list[dict[str, Any]] | None = None
    """Every guardrail verdict of the request ({id, phase, passed, reason, entities}); the call record keeps them."""
    relay: bool = False
    """The stream goes to the client as its frames' bytes, unread (`write_stream`), with no stage wrapping it: an
    OpenAI-compatible upstream may then hand on whole blocks of events once content flows (`openai_relay.py`)."""
    redacted: Mapping[str, str] | None = None
    """PII redaction's originals (value → placeholder), filled as the request is redacted: a stored body of the
    call (`logging.bodies`) masks them like `is_pii` inputs, since the client sent them and the answer restores them."""
    retrievals: list[Retrieval] | None = None
    """The chunks the retrieval stage found, every base in request order (None: the request named no base); the
    deployment answer's `retrievals` and the call record read them."""


@dataclass(slots=True)
class OpenedStream:
    """A stream committed to one target: its first content has arrived, so no other target can take over."""

    first: list[list[ChatChunk]]
    rest: AsyncIterator[list[ChatChunk]]
