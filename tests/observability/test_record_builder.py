"""Exchange → CallRecord at the edge: each outcome of a call is summarised, and no secret is kept."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from portico.core.errors import FieldError, UpstreamHTTPError, ValidationFailed
from portico.core.knowledge import Retrieval
from portico.core.types import Attempt, ChatRequest, TraceInfo, Usage
from portico.http.records import record_from_exchange
from portico.http.routes.chat import Exchange
from portico.observability.bodies import BodyCapture, BodyPolicy
from portico.pipeline.served import Served

KEY = "sk-client-secret-key"


def exchange(*, stream: bool = False, trace: TraceInfo | None = None, **changes: object) -> Exchange:
    trace = trace or TraceInfo(
        trace_id="t1", metadata={"team": "a"}, identity={"id": "u1", "email": "u@example.com"}, thread={"id": "th1"}
    )
    request = ChatRequest(model="openai/gpt-4o", body={}, stream=stream, trace=trace, client_key=KEY)
    ex = Exchange("/v1/chat/completions", "r1", started=100.0, request=request, finished=100.25, overhead_ms=1.5)
    for name, value in changes.items():
        setattr(ex, name, value)
    return ex


def test_a_served_completion() -> None:
    served = Served(
        provider="openai",
        model="gpt-4o",
        attempts=[Attempt("openai", "gpt-4o", 429, 3.0, "rate limited"), Attempt("openai", "gpt-4o", 200, 9.0)],
        usage=Usage(prompt_tokens=7, completion_tokens=3, total_tokens=10, cached_tokens=2, reasoning_tokens=1),
        cache_status="MISS",
        upstream_ms=200.0,
    )
    record = record_from_exchange(exchange(served=served))
    assert (record.provider, record.model, record.requested_model) == ("openai", "gpt-4o", "openai/gpt-4o")
    assert (record.prompt_tokens, record.completion_tokens, record.total_tokens) == (7, 3, 10)
    assert (record.cached_tokens, record.reasoning_tokens) == (2, 1)
    assert record.latency_ms == 250.0 and record.overhead_ms == 1.5 and record.ttft_ms is None
    assert [a["status"] for a in record.attempts] == [429, 200] and record.attempts[0]["error"] == "rate limited"
    assert record.cache_status == "MISS" and record.cost_usd is None
    assert record.metadata == {"team": "a"} and record.identity_id == "u1" and record.thread_id == "th1"
    assert record.client_key_hash == hashlib.sha256(KEY.encode()).hexdigest()[:16]
    assert KEY not in repr(record)
    assert abs(record.created_at - (datetime.now(UTC) - timedelta(milliseconds=250))) < timedelta(seconds=2)


def test_a_committed_stream_has_a_time_to_first_token() -> None:
    served = Served(provider="openai", model="gpt-4o", upstream_ms=40.0, usage=Usage(1, 2, 3))
    record = record_from_exchange(exchange(stream=True, served=served))
    assert record.stream and record.ttft_ms == 41.5


def test_a_stream_that_failed_before_its_first_token_has_none() -> None:
    error = UpstreamHTTPError("upstream said: bad key sk-upstream-secret-123", provider="openai", upstream_status=500)
    served = Served(attempts=[Attempt("openai", "gpt-4o", 500, 5.0, "boom")], upstream_ms=5.0)
    record = record_from_exchange(exchange(stream=True, served=served, status=502, error=error))
    assert record.ttft_ms is None and record.status == 502 and record.error_type == "upstream_error"
    assert record.provider == "openai" and record.model == "gpt-4o"
    assert record.error_message is not None and "sk-upstream-secret-123" not in record.error_message


def test_a_client_disconnect_is_named() -> None:
    served = Served(provider="openai", model="gpt-4o", upstream_ms=10.0, partial=True)
    record = record_from_exchange(exchange(stream=True, served=served, status=499, disconnected=True))
    assert record.error_type == "client_disconnected" and record.partial and record.ttft_ms == 11.5


def test_a_request_refused_before_parsing_is_still_recorded() -> None:
    error = ValidationFailed([FieldError(("body", "temperature"), "too hot")])
    ex = Exchange("/v2/router/chat/completions", "r2", started=1.0, finished=1.001, status=422, error=error)
    ex.dialect = "orq"
    record = record_from_exchange(ex)
    assert record.status == 422 and record.error_type == "invalid_request_error" and record.dialect == "orq"
    assert record.provider is record.model is record.requested_model is record.client_key_hash is None
    assert record.stream is False and record.ttft_ms is None and record.metadata == {} and record.attempts == ()


def test_every_field_lands_in_its_own_column() -> None:
    """The record is built positionally: every field gets a value no other field has, and each is checked by name,
    so two swapped positions fail here."""
    trace = TraceInfo(
        trace_id="trace-1",
        span_id="span-1",
        parent_span_id="parent-1",
        metadata={"team": "a"},
        identity={"id": "user-1"},
        thread={"id": "thread-1"},
    )
    served = Served(
        provider="openai",
        model="gpt-4o-2024",
        attempts=[Attempt("openai", "gpt-4o-2024", 200, 9.0)],
        usage=Usage(prompt_tokens=7, completion_tokens=3, total_tokens=10, cached_tokens=2, reasoning_tokens=1),
        cache_status="MISS",
        upstream_ms=200.0,
        partial=True,
        retrievals=[Retrieval("x" * 100, 0.75, "kb-1", "chunk-1", "ds-1")],
    )
    bodies = BodyCapture(BodyPolicy("full"), "full")
    bodies.request(b'{"asked": 1}')
    bodies.response(b"data: {}\n\n")
    ex = exchange(stream=True, trace=trace, served=served, dialect="portkey", bodies=bodies)
    record = record_from_exchange(ex)._asdict()
    assert len(record.pop("id")) == 32
    assert abs(record.pop("created_at") - (datetime.now(UTC) - timedelta(milliseconds=250))) < timedelta(seconds=2)
    assert record == {
        "request_id": "r1",
        "path": "/v1/chat/completions",
        "dialect": "portkey",
        "status": 200,
        "trace_id": "trace-1",
        "span_id": "span-1",
        "parent_span_id": "parent-1",
        "client_key_hash": hashlib.sha256(KEY.encode()).hexdigest()[:16],
        "provider": "openai",
        "model": "gpt-4o-2024",
        "requested_model": "openai/gpt-4o",
        "error_type": None,
        "error_message": None,
        "stream": True,
        "partial": True,
        "cache_status": "MISS",
        "prompt_tokens": 7,
        "completion_tokens": 3,
        "total_tokens": 10,
        "cached_tokens": 2,
        "reasoning_tokens": 1,
        "cost_usd": None,
        "latency_ms": 250.0,
        "overhead_ms": 1.5,
        "ttft_ms": 201.5,
        "attempts": ({"provider": "openai", "model": "gpt-4o-2024", "status": 200, "latency_ms": 9.0, "error": None},),
        "metadata": {"team": "a"},
        "identity_id": "user-1",
        "thread_id": "thread-1",
        "retrievals": [
            {
                "knowledge_id": "kb-1",
                "chunk_id": "chunk-1",
                "datasource_id": "ds-1",
                "search_score": 0.75,
                "rerank_score": None,
                "preview": "x" * 80,
            }
        ],
        "request_body": '{"asked": 1}',
        "response_body": "data: {}\n\n",
    }
    failed = Exchange("/v1/chat/completions", "req-2", started=1.0, finished=1.01, status=502)
    failed.error = UpstreamHTTPError("boom", provider="openai", upstream_status=500)
    failed_record = record_from_exchange(failed)
    assert (failed_record.error_type, failed_record.error_message) == ("upstream_error", "boom")
    assert (failed_record.cost_usd, failed_record.ttft_ms) == (None, None)
