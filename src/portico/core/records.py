"""`CallRecord`: the summary of one chat call that storage keeps and metrics count.

It never holds a client key (only `hash_client_key`'s digest); a prompt or a completion only as the request and
response bodies the gateway or the request asked to keep (`observability/bodies.py`: PII and keys masked).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any, NamedTuple, Protocol

NO_METADATA: Mapping[str, Any] = MappingProxyType({})


def hash_client_key(key: str | None) -> str | None:
    """A stable, non-reversible handle on a client key: the first 16 hex digits of its SHA-256."""
    if not key:
        return None
    return hashlib.sha256(key.encode()).hexdigest()[:16]


class CallRecord(NamedTuple):
    """A named tuple, not a dataclass: one is built per request on the event loop, as a plain tuple in field
    order (`http/records.py`; a 31-keyword call cost 3.0 µs, the tuple 0.7 µs), and the SQLite row is the tuple
    itself with three fields re-encoded. The call log stores it by field name (`_fields` are the columns); the
    order matters only to that positional builder, whose test checks every field by name."""

    id: str
    created_at: datetime
    """When the request arrived (UTC)."""
    request_id: str
    path: str
    dialect: str
    status: int
    """The HTTP status the client got (200 for a stream that failed after its headers; see `error_type`)."""
    trace_id: str | None = None
    span_id: str | None = None
    parent_span_id: str | None = None
    client_key_hash: str | None = None
    provider: str | None = None
    model: str | None = None
    requested_model: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    stream: bool = False
    partial: bool = False
    cache_status: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float | None = None
    latency_ms: float = 0.0
    overhead_ms: float = 0.0
    ttft_ms: float | None = None
    """Time to the first content of a stream; None for non-streaming calls."""
    attempts: Sequence[Mapping[str, Any]] = ()
    metadata: Mapping[str, Any] = NO_METADATA
    identity_id: str | None = None
    thread_id: str | None = None
    retrievals: Sequence[Mapping[str, Any]] | None = None
    """What the knowledge bases returned ({knowledge_id, chunk_id, datasource_id, search_score, rerank_score,
    preview}: a chunk's first 80 characters, never more); None when the request named no knowledge base."""
    request_body: str | None = None
    """The body the client sent, as `logging.bodies` or `x-portico-log-bodies` keeps it (PII and keys masked,
    maybe cut); None when bodies are not kept (the default)."""
    response_body: str | None = None
    """The body the client was sent (a stream's `text/event-stream` frames), kept as `request_body` is."""

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the timestamp as ISO 8601)."""
        data = self._asdict()
        data["created_at"] = self.created_at.isoformat()
        data["attempts"] = [dict(attempt) for attempt in self.attempts]
        data["metadata"] = dict(self.metadata)
        if self.retrievals is not None:
            data["retrievals"] = [dict(found) for found in self.retrievals]
        if self.request_body is None:  # shown only when kept: most gateways keep none
            del data["request_body"]
        if self.response_body is None:
            del data["response_body"]
        return data


class RecordSink(Protocol):
    """Where the recorder writes call records (storage's `RequestLogRepo`)."""

    async def insert_many(self, records: Sequence[CallRecord]) -> None:
        """Store the records, skipping any already stored (same id). Raise ValueError for records the database
        refuses for what they hold (never retried); any other error means "not now"."""
        ...


@dataclass(frozen=True, slots=True)
class LogFilter:
    """What a call-log query keeps: every given field must match; `since` inclusive, `until` exclusive (UTC);
    `metadata` pairs each match the record's metadata value for that key, as a string."""

    provider: str | None = None
    model: str | None = None
    status: int | None = None
    trace_id: str | None = None
    identity_id: str | None = None
    thread_id: str | None = None
    dialect: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    metadata: tuple[tuple[str, str], ...] = ()
