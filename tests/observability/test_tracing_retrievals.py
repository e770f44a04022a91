"""The request span names what the knowledge bases returned (AMB-44: "record the retrievals on the trace")."""

from __future__ import annotations

from datetime import UTC, datetime

from portico.core.records import CallRecord
from portico.observability.tracing import _request_attributes


def _record(**fields: object) -> CallRecord:
    base = CallRecord("id-1", datetime.now(UTC), "req-1", "/v1/chat/completions", "openai", 200)
    return base._replace(**fields)


def test_retrievals_become_one_span_attribute_and_none_adds_nothing() -> None:
    found = (
        {"knowledge_id": "kb-1", "chunk_id": "17", "search_score": 0.8125, "rerank_score": None, "preview": "x"},
        {"knowledge_id": "kb-2", "chunk_id": "3", "search_score": 0.25, "rerank_score": 0.5, "preview": "y"},
    )
    attributes = _request_attributes(_record(retrievals=found))
    assert attributes["portico.retrievals"] == ["kb-1:17:0.8125", "kb-2:3:0.25"]
    assert "portico.retrievals" not in _request_attributes(_record())
    assert _request_attributes(_record(retrievals=()))["portico.retrievals"] == [], "searched, found nothing"
