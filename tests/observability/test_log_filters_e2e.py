"""`GET /v1/logs` filters as an operator uses them: by identity, thread, dialect, metadata key/value and time
range, over HTTP against a gateway that recorded real calls, on SQLite and on PostgreSQL."""

from __future__ import annotations

import urllib.parse
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import Stack
from tests.storage.test_call_log_e2e import wait_for_record


def send(stack: Stack, tag: str, identity: str, thread: str, metadata: dict[str, str], path: str) -> str:
    request_id = f"{tag}-{uuid.uuid4().hex[:8]}"
    body = {
        "model": "openai/gpt-4o",
        "messages": [{"role": "user", "content": "filter me"}],
        "identity": {"id": identity},
        "thread": {"id": thread},
        "metadata": metadata,
    }
    assert stack.post(path, body, headers={"x-request-id": request_id}).status == 200
    wait_for_record(stack, request_id)
    return request_id


def found(stack: Stack, **query: Any) -> set[str]:
    response = stack.get("/v1/logs?" + urllib.parse.urlencode(query, doseq=True) + "&limit=100")
    assert response.status == 200, response.body
    page = response.json()
    assert page["total"] == len(page["data"])
    return {record["request_id"] for record in page["data"]}


def test_logs_filter_by_identity_thread_dialect_metadata_and_time(logged: Stack) -> None:
    tag = uuid.uuid4().hex[:6]
    a = send(logged, tag, "ada", "t1", {"team": "search", "tier": "gold"}, "/v1/chat/completions")
    b = send(logged, tag, "ada", "t2", {"team": "search", "tier": "free"}, "/v2/router/chat/completions")
    c = send(logged, tag, "bob", "t1", {"team": "ads"}, "/v1/chat/completions")
    assert found(logged, identity_id="ada") == {a, b}
    assert found(logged, thread_id="t1") == {a, c}
    assert found(logged, identity_id="ada", thread_id="t1") == {a}
    assert found(logged, dialect="orq") == {b}
    assert found(logged, metadata="team=search") == {a, b}
    assert found(logged, metadata=["team=search", "tier=gold"]) == {a}
    assert found(logged, metadata="team=nobody") == set()
    now = datetime.now(UTC)
    assert found(logged, since=(now - timedelta(minutes=5)).isoformat()) == {a, b, c}
    assert found(logged, until=(now - timedelta(minutes=5)).isoformat()) == set()
    naive_future = (datetime.now(UTC) + timedelta(minutes=5)).replace(tzinfo=None).isoformat()
    assert found(logged, until=naive_future) == {a, b, c}  # a naive time is read as UTC


def test_a_malformed_filter_is_a_clear_json_error(logged: Stack) -> None:
    bad = logged.get("/v1/logs?metadata=team")
    assert bad.status == 422 and "key=value" in bad.json()["error"]["message"]
    when = logged.get("/v1/logs?since=yesterday")
    assert when.status == 422 and when.json()["error"]["type"]


def test_identities_carry_their_totals_and_a_thread_reads_in_order(logged: Stack) -> None:
    tag = uuid.uuid4().hex[:6]
    ada, bob = f"ada-{tag}", f"bob-{tag}"
    first = send(logged, tag, ada, f"t-{tag}", {}, "/v1/chat/completions")
    second = send(logged, tag, bob, f"t-{tag}", {}, "/v1/chat/completions")
    third = send(logged, tag, ada, f"other-{tag}", {}, "/v2/router/chat/completions")
    records = {rid: logged.get(f"/v1/logs/{rid}").json() for rid in (first, second, third)}

    listing = logged.get("/v1/identities").json()
    assert listing["total"] == 2 and [i["id"] for i in listing["data"]] == [ada, bob]  # last seen first
    one = logged.get(f"/v1/identities/{ada}").json()
    mine = [records[first], records[third]]
    assert one["request_count"] == 2 and one["priced_requests"] == 2
    assert one["total_tokens"] == sum(r["total_tokens"] for r in mine) > 0
    assert one["prompt_tokens"] == sum(r["prompt_tokens"] for r in mine)
    assert one["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in mine))
    assert one["first_seen_at"] < one["last_seen_at"] and listing["data"][1]["request_count"] == 1

    missing = logged.get("/v1/identities/nobody")
    assert missing.status == 404 and missing.json()["error"]["code"] == "identity_not_found"
    thread = logged.get(f"/v1/threads/t-{tag}").json()
    assert [r["request_id"] for r in thread["data"]] == [first, second] and thread["total"] == 2
    assert logged.get("/v1/identities", key=None).status == 401
