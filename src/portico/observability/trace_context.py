"""W3C trace context for a request when tracing is on: the ids its spans and its call record share, and the
`traceparent` sent upstream. No OpenTelemetry import here: the request path uses it, the exporter does not.

Precedence: `traceparent` (W3C) names the trace and the parent; else Portkey's `x-portkey-trace-id` (a W3C id as
it is, any other string hashed to one, so every request naming it lands on one trace) and `x-portkey-parent-span-id`.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from portico.config.schema import TelemetryConfig
from portico.core.types import ChatChunk, TraceInfo

if TYPE_CHECKING:
    from portico.observability.tracing import Tracing

_HEX = frozenset("0123456789abcdef")


def new_span_id() -> str:
    return f"{random.getrandbits(64) | 1:016x}"


def new_trace_id() -> str:
    return f"{random.getrandbits(128) | 1:032x}"


def is_hex_id(value: str | None, length: int) -> bool:
    return value is not None and len(value) == length and _HEX.issuperset(value) and value != "0" * length


def otel_trace_id(trace_id: str | None) -> str | None:
    """A client's trace id as a W3C one: a W3C id as it is, any other string hashed (sha256, first 32 digits)."""
    if trace_id is None or is_hex_id(trace_id, 32):
        return trace_id
    return hashlib.sha256(trace_id.encode()).hexdigest()[:32]


def parse_traceparent(header: bytes) -> tuple[str, str, bool] | None:
    """`00-<trace id>-<parent span id>-<flags>` → (trace id, parent span id, sampled); None when malformed."""
    parts = header.decode("latin-1").strip().lower().split("-")
    if len(parts) < 4 or len(parts[0]) != 2 or parts[0] == "ff" or len(parts[3]) != 2:
        return None
    trace_id, parent, flags = parts[1], parts[2], parts[3]
    if not (is_hex_id(trace_id, 32) and is_hex_id(parent, 16) and _HEX.issuperset(flags)):
        return None
    return trace_id, parent, bool(int(flags, 16) & 1)


def traced(trace: TraceInfo, traceparent: bytes | None) -> TraceInfo:
    """The request's trace with W3C ids filled in: a span id of its own, and the trace and parent it belongs to.
    A Portkey trace id that is not a W3C id stays as the client gave it (the record and `x-portkey-trace-id`
    keep it); its spans carry the hashed id (`otel_trace_id`) and the original as `portkey.trace_id`."""
    parsed = parse_traceparent(traceparent) if traceparent else None
    parent: str | None
    if parsed is not None:
        trace_id, parent, _ = parsed  # the caller's trace: its ids win over Portkey's
    else:
        trace_id = trace.trace_id or new_trace_id()
        parent = trace.parent_span_id if is_hex_id(trace.parent_span_id, 16) else None
    span_id = trace.span_id if trace.span_id is not None and is_hex_id(trace.span_id, 16) else new_span_id()
    return replace(trace, trace_id=trace_id, span_id=span_id, parent_span_id=parent)


def traceparent_of(trace: TraceInfo) -> str:
    """The `traceparent` an upstream gets: the gateway's request span is its parent."""
    return f"00-{otel_trace_id(trace.trace_id)}-{trace.span_id}-01"


def finish_reasons_of(body: Mapping[str, Any]) -> list[str]:
    """`gen_ai.response.finish_reasons` of a `chat.completion`: each choice's, in choice order."""
    choices = body.get("choices")
    if not isinstance(choices, list):
        return []
    return [str(c["finish_reason"]) for c in choices if isinstance(c, Mapping) and c.get("finish_reason")]


_FINISH = re.compile(rb'"finish_reason"\s*:\s*"([^"\\]{1,64})"')
"""A finish reason in a frame's bytes: a relayed frame may hold several events and is never decoded for this."""


async def tap_finish_reasons(chunks: AsyncIterator[list[ChatChunk]], into: list[str]) -> AsyncIterator[list[ChatChunk]]:
    """The stream as it is, noting each choice's finish reason into `into`; wrapped around a stream only when
    tracing is on. Relayed bytes are searched, not decoded; a chunk built here is read as the object it is."""
    try:
        async for batch in chunks:
            for chunk in batch:
                raw = chunk.raw
                if raw is not None:
                    if b'"finish_reason"' in raw:
                        into.extend(found.decode() for found in _FINISH.findall(raw))
                else:
                    into.extend(finish_reasons_of(chunk.data))
            yield batch
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()


def tracing_wanted(config: TelemetryConfig, env: Mapping[str, str]) -> bool:
    """`telemetry.enabled`, or when unset: an OTLP endpoint in the config or the standard variables."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if config.enabled is not None:
        return config.enabled
    return bool(
        config.endpoint or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )


def build_tracing(config: TelemetryConfig, env: Mapping[str, str]) -> Tracing | None:
    """None when off. OpenTelemetry is imported only when on; on without the `otel` extra is a start-up error."""
    if not tracing_wanted(config, env):
        return None
    try:
        from portico.observability.tracing import tracing_from
    except ImportError as exc:
        raise RuntimeError(
            f"telemetry is on but OpenTelemetry is missing ({exc}): pip install 'portico[otel]'"
        ) from exc
    return tracing_from(config, env)
