"""OpenTelemetry spans built after the fact from each call record: one server span per request and one client
span per upstream attempt, with GenAI semantic-convention attributes, exported over OTLP/HTTP in batches.

Imported only when tracing is on (`build_tracing`): off, the gateway loads no OpenTelemetry module and does no
per-request work. Spans carry the record's own trace and span ids, so a log line and a trace find each other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    set_span_in_context,
)

from portico.config.schema import TelemetryConfig
from portico.core.records import CallRecord
from portico.observability.trace_context import is_hex_id, otel_trace_id

_MS = 1_000_000


class _GivenIds(IdGenerator):
    """Hands the SDK the ids the record already carries for the request span; random ids for attempt spans.
    Spans are built on one thread (the event loop), one request at a time, so a single slot is enough."""

    def __init__(self) -> None:
        self.trace_id = 0
        self.span_id = 0
        self._random = RandomIdGenerator()

    def generate_trace_id(self) -> int:
        given, self.trace_id = self.trace_id, 0
        return given or self._random.generate_trace_id()

    def generate_span_id(self) -> int:
        given, self.span_id = self.span_id, 0
        return given or self._random.generate_span_id()


class Tracing:
    def __init__(self, exporter: SpanExporter, *, service_name: str, export_delay_ms: int) -> None:
        self._ids = _GivenIds()
        self._provider = TracerProvider(resource=Resource({"service.name": service_name}), id_generator=self._ids)
        self._provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=export_delay_ms))
        self._tracer = self._provider.get_tracer("portico")

    def export(self, record: CallRecord, finish_reasons: Sequence[str] = ()) -> None:
        """Queue the request's spans for export (the batch processor's thread sends them). `finish_reasons`:
        each choice's, as the answer gave them (the call record does not keep them)."""
        start = int(record.created_at.timestamp() * 1e9)
        end = start + int(record.latency_ms * _MS)
        trace_id = otel_trace_id(record.trace_id)
        parent = None
        if trace_id is not None and is_hex_id(record.parent_span_id, 16):
            remote = SpanContext(int(trace_id, 16), int(str(record.parent_span_id), 16), True, TraceFlags(1))
            parent = set_span_in_context(NonRecordingSpan(remote))
        self._ids.trace_id = int(trace_id, 16) if trace_id is not None else 0
        self._ids.span_id = int(str(record.span_id), 16) if is_hex_id(record.span_id, 16) else 0
        named = record.metadata.get("span_name") if record.metadata else None
        span = self._tracer.start_span(
            named if isinstance(named, str) and named else f"chat {record.requested_model or ''}".rstrip(),
            context=parent,
            kind=SpanKind.SERVER,
            attributes=_request_attributes(record),
            start_time=start,
        )
        if finish_reasons:
            span.set_attribute("gen_ai.response.finish_reasons", list(finish_reasons))
        if record.error_type is not None:
            span.set_status(Status(StatusCode.ERROR, record.error_type))
        context = set_span_in_context(span)
        at = start
        for index, attempt in enumerate(record.attempts):
            took = int(float(attempt.get("latency_ms") or 0.0) * _MS)
            child = self._tracer.start_span(
                f"chat {attempt.get('model') or ''}".rstrip(),
                context=context,
                kind=SpanKind.CLIENT,
                attributes=_attempt_attributes(index, attempt, record.attempts[index - 1] if index else None),
                start_time=at,
            )
            if int(attempt.get("status") or 0) >= 400 or attempt.get("error"):
                child.set_status(Status(StatusCode.ERROR, str(attempt.get("error") or attempt.get("status"))))
            child.end(end_time=min(at + took, end) if end > at else at + took)
            at += took
        span.end(end_time=end)

    def close(self) -> None:
        """Flush what is queued, then stop the exporter's thread."""
        self._provider.shutdown()


def _request_attributes(record: CallRecord) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "http.response.status_code": record.status,
        "portico.request_id": record.request_id,
        "portico.dialect": record.dialect,
        "portico.stream": record.stream,
        "portico.attempts": len(record.attempts),
        "gen_ai.usage.input_tokens": record.prompt_tokens,
        "gen_ai.usage.output_tokens": record.completion_tokens,
    }
    optional = {
        "gen_ai.provider.name": record.provider,
        "gen_ai.request.model": record.requested_model,
        "gen_ai.response.model": record.model,
        "portico.cache_status": record.cache_status,
        "portico.cost_usd": record.cost_usd,
        "portico.ttft_ms": record.ttft_ms,
        "error.type": record.error_type,
        "portkey.trace_id": record.trace_id if record.trace_id and not is_hex_id(record.trace_id, 32) else None,
    }
    attributes.update({key: value for key, value in optional.items() if value is not None})
    if record.cached_tokens:
        attributes["gen_ai.usage.cache_read.input_tokens"] = record.cached_tokens
    if record.reasoning_tokens:
        attributes["gen_ai.usage.reasoning.output_tokens"] = record.reasoning_tokens
    metadata = record.metadata
    if metadata and "deployment_key" in metadata:  # a deployment call: which deployment, version and variant
        for key in ("deployment_key", "deployment_version", "deployment_variant"):
            if metadata.get(key) is not None:
                attributes[f"portico.{key.replace('_', '.', 1)}"] = metadata[key]
    verdicts = metadata.get("guardrails") if metadata else None
    if verdicts:  # every guardrail verdict, as the call record keeps it: `id:phase:pass|fail`
        attributes["portico.guardrails"] = [
            f"{v.get('id')}:{v.get('phase')}:{'pass' if v.get('passed') else 'fail'}" for v in verdicts
        ]
    if record.retrievals is not None:  # what the knowledge bases returned: `knowledge_id:chunk_id:search_score`
        attributes["portico.retrievals"] = [
            f"{r.get('knowledge_id')}:{r.get('chunk_id')}:{r.get('search_score')}" for r in record.retrievals
        ]
    return attributes


def _attempt_attributes(index: int, attempt: Mapping[str, Any], previous: Mapping[str, Any] | None) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": str(attempt.get("provider") or ""),
        "gen_ai.request.model": str(attempt.get("model") or ""),
        "portico.attempt.index": index,
        "http.response.status_code": int(attempt.get("status") or 0),
    }
    if attempt.get("error"):
        attributes["error.type"] = str(attempt["error"])[:200]
    if previous is not None:
        same = (previous.get("provider"), previous.get("model")) == (attempt.get("provider"), attempt.get("model"))
        attributes["portico.attempt.reason"] = "retry" if same else "fallback"
        attributes["portico.fallback_reason"] = str(previous.get("error") or f"status {previous.get('status')}")[:200]
    return attributes


def tracing_from(config: TelemetryConfig, env: Mapping[str, str]) -> Tracing:
    """OTLP over HTTP; endpoint and headers from the config, else from the standard OTEL_* variables (which the
    exporter reads itself)."""
    exporter = OTLPSpanExporter(endpoint=config.endpoint, headers=dict(config.headers) or None)
    service = env.get("OTEL_SERVICE_NAME") or config.service_name
    return Tracing(exporter, service_name=service, export_delay_ms=config.export_delay_ms)
