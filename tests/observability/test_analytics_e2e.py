"""`GET /v1/analytics/usage` as an operator uses it, on SQLite and on PostgreSQL: a gateway serves real calls
(priced, unpriced, failed, cache hits, several identities and keys), and every group's sums and latency
percentiles equal what the raw records listed by `/v1/logs` add up to. Bad parameters are 422s naming them."""

from __future__ import annotations

import math
import urllib.parse
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import openai
import pytest

from tests.conftest import KEY, Stack
from tests.gateway_server import GatewayThread
from tests.storage.test_call_log_e2e import logged_settings, wait_for_record
from tests.upstreams.server import UpstreamThread

SECOND_KEY = "sk-portico-second-analytics-key"


@pytest.fixture
def served(storage_url: str, upstream_thread: UpstreamThread) -> Iterator[Stack]:
    """A gateway whose call log holds a known mix of calls, all recorded before the test reads it."""
    upstream_thread.state.reset()
    settings = logged_settings(upstream_thread.url, storage_url, auth={"keys": [KEY, SECOND_KEY]})
    settings["providers"]["groq"] = {"api_key": "gsk-test", "base_url": f"{upstream_thread.url}/v1"}
    with GatewayThread(settings) as gateway:
        stack = Stack(gateway, upstream_thread)
        ids = [
            *(_call(stack, "openai/gpt-4o", "alice") for _ in range(3)),
            _call(stack, "openai/gpt-4o", "bob", key=SECOND_KEY),
            _call(stack, "groq/llama-3.3-70b-versatile", "bob"),
            _call(stack, "openai/made-up-model", "alice"),  # no price: cost null, still counted
            _call(stack, "deadprov/gpt-4o", "carol", expect=502),  # an upstream that never answers
        ]
        cached = {"model": "openai/gpt-4o", "messages": _ask(), "cache": {"type": "exact_match", "ttl": 60}}
        for _ in range(2):  # a miss, then a hit that records what it saved
            response = stack.post("/v2/router/chat/completions", cached)
            assert response.status == 200
            ids.append(response.headers["x-request-id"])
        for request_id in ids:
            wait_for_record(stack, request_id)
        yield stack
    upstream_thread.state.reset()


def _ask() -> list[Any]:
    return [{"role": "user", "content": f"analytics {uuid.uuid4().hex}"}]


def _call(stack: Stack, model: str, identity: str, *, key: str = KEY, expect: int = 200) -> str:
    client = openai.OpenAI(base_url=stack.gateway.url + "/v1", api_key=key, max_retries=0)
    try:
        raw = client.chat.completions.with_raw_response.create(
            model=model,
            messages=_ask(),
            extra_body={"identity": {"id": identity}},
        )
    except openai.APIStatusError as failed:
        assert failed.status_code >= 500 and expect >= 500
        return str(failed.response.headers["x-request-id"])
    assert expect == 200
    return str(raw.headers["x-request-id"])


def _records(stack: Stack, **query: str) -> list[dict[str, Any]]:
    response = stack.get("/v1/logs?limit=1000&" + urllib.parse.urlencode(query))
    assert response.status == 200, response.body
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def _usage(stack: Stack, **query: str) -> dict[Any, dict[str, Any]]:
    response = stack.get("/v1/analytics/usage?" + urllib.parse.urlencode(query))
    assert response.status == 200, response.body
    return {row["group"]: row for row in response.json()["data"]}


def _nearest_rank(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(p * len(ordered)) - 1]


def _expected(records: list[dict[str, Any]], group_of: Any) -> dict[Any, dict[str, Any]]:
    """What each group must sum to, from the raw records alone."""
    groups: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        groups[group_of(record)].append(record)
    out = {}
    for group, members in groups.items():
        priced = [r["cost_usd"] for r in members if r["cost_usd"] is not None]
        saved = [r["metadata"]["cost_saved_usd"] for r in members if r["metadata"].get("cost_saved_usd") is not None]
        latencies = [r["latency_ms"] for r in members]
        out[group] = {
            "requests": len(members),
            "errors": sum(1 for r in members if r["status"] >= 400 or r["error_type"] is not None),
            "prompt_tokens": sum(r["prompt_tokens"] for r in members),
            "completion_tokens": sum(r["completion_tokens"] for r in members),
            "total_tokens": sum(r["total_tokens"] for r in members),
            "cost_usd": sum(priced) if priced else None,
            "priced_requests": len(priced),
            "cache_hits": sum(1 for r in members if r["cache_status"] == "HIT"),
            "saved_usd": sum(saved) if saved else None,
            "p50_latency_ms": _nearest_rank(latencies, 0.5),
            "p95_latency_ms": _nearest_rank(latencies, 0.95),
        }
    return out


def _assert_rows_match(got: dict[Any, dict[str, Any]], expected: dict[Any, dict[str, Any]]) -> None:
    assert set(got) == set(expected)
    for group, want in expected.items():
        row = got[group]
        for field, value in want.items():
            if isinstance(value, float):
                assert row[field] == pytest.approx(value, rel=1e-9, abs=1e-12), (group, field)
            else:
                assert row[field] == value, (group, field, row)


GROUPINGS: dict[str, Any] = {
    "model": lambda r: r["model"],
    "provider": lambda r: r["provider"],
    "identity": lambda r: r["identity_id"],
    "key": lambda r: r["client_key_hash"],
    "day": lambda r: datetime.fromisoformat(r["created_at"]).astimezone(UTC).date().isoformat(),
}


def test_each_grouping_sums_to_the_raw_records(served: Stack) -> None:
    records = _records(served)
    assert len(records) == 9
    for group_by, group_of in GROUPINGS.items():
        expected = _expected(records, group_of)
        _assert_rows_match(_usage(served, group_by=group_by, percentiles="true"), expected)
        plain = _usage(served, group_by=group_by)  # without the sort: the same sums, no percentiles
        assert all(row["p50_latency_ms"] is None and row["p95_latency_ms"] is None for row in plain.values())
        for row in expected.values():
            row["p50_latency_ms"] = row["p95_latency_ms"] = None
        _assert_rows_match(plain, expected)


def test_the_mix_shows_where_it_should(served: Stack) -> None:
    """Spot checks a reader would make: the unpriced model has no cost, the dead provider only errors, the
    cache hit is counted and saved what its miss cost, and Groq's model is priced from the shipped table."""
    by_model = _usage(served, group_by="model")
    assert by_model["made-up-model"]["cost_usd"] is None and by_model["made-up-model"]["priced_requests"] == 0
    assert by_model["llama-3.3-70b-versatile"]["cost_usd"] > 0
    gpt = by_model["gpt-4o"]
    assert gpt["cache_hits"] == 1 and gpt["saved_usd"] > 0
    by_provider = _usage(served, group_by="provider")
    assert by_provider["deadprov"]["errors"] == by_provider["deadprov"]["requests"] == 1
    assert by_provider["deadprov"]["cost_usd"] == 0
    assert len(_usage(served, group_by="key")) == 2


def test_filters_by_identity_and_time_range(served: Stack) -> None:
    alice = _usage(served, group_by="model", identity_id="alice", percentiles="true")
    expected = _expected(_records(served, identity_id="alice"), lambda r: r["model"])
    _assert_rows_match(alice, expected)
    assert sum(row["requests"] for row in alice.values()) == 4
    now = datetime.now(UTC)
    later = (now + timedelta(hours=1)).isoformat()
    assert _usage(served, group_by="model", **{"from": later}) == {}
    earlier = (now - timedelta(hours=1)).isoformat()
    window = _usage(served, group_by="provider", **{"from": earlier, "to": later})
    assert sum(row["requests"] for row in window.values()) == 9
    assert _usage(served, group_by="provider", **{"to": earlier}) == {}


BAD_QUERIES = (
    ("", "group_by"),
    ("group_by=colour", "group_by"),
    ("group_by=model&from=yesterday", "from"),
    ("group_by=model&to=2026-13-01", "to"),
    ("group_by=model&from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", "to"),
)


def test_bad_parameters_are_422s_naming_the_parameter(served: Stack) -> None:
    for query, param in BAD_QUERIES:
        response = served.get("/v1/analytics/usage?" + query)
        assert response.status == 422, (query, response.body)
        error = response.json()["error"]
        assert error["param"] == param or param in error["message"], (query, error)


def test_analytics_need_a_gateway_key(served: Stack) -> None:
    response = served.get("/v1/analytics/usage?group_by=model", key=None)
    assert response.status == 401 and response.json()["error"]["type"]
