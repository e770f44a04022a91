"""RequestLogRepo on both backends: what goes in comes back, filtered, paged and newest first."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from portico.core.records import CallRecord
from portico.storage.db import Database, head_revision
from portico.storage.repos import RecordRejected, RequestLogRepo, StorageUnavailable, _SQLiteTime
from portico.storage.tables import request_logs
from tests.storage.conftest import make_record


def test_a_records_fields_are_the_tables_columns() -> None:
    """Rows are written as records in field order under the field names: a column without a field (or the
    reverse) must fail here, not in a batch at run time."""
    assert sorted(CallRecord._fields) == sorted(column.name for column in request_logs.columns)


async def test_a_record_with_default_attempts_and_metadata_round_trips(database: Database) -> None:
    repo = RequestLogRepo(database)
    record = CallRecord(
        id="r-defaults",
        created_at=datetime(2026, 1, 1, 12, 0, 0, 7, tzinfo=UTC),
        request_id="req-defaults",
        path="/v1/chat/completions",
        dialect="openai",
        status=401,
    )
    await repo.insert_many([record])
    back = await repo.get("req-defaults")
    assert back == record
    assert back is not None and back.as_json()["attempts"] == [] and back.as_json()["metadata"] == {}


def test_sqlite_times_are_right_when_the_second_changes_and_comes_back() -> None:
    """The formatter remembers the last second's text: each value must still get its own second and date."""
    times = [
        datetime(2026, 1, 1, 12, 0, 5, 999_999, tzinfo=UTC),
        datetime(2026, 1, 1, 12, 0, 6, tzinfo=UTC),
        datetime(2026, 1, 1, 12, 0, 5, 1, tzinfo=UTC),
        datetime(2026, 2, 1, 12, 0, 5, 1, tzinfo=UTC),  # same day of month, hour, minute, second
        datetime(2027, 1, 1, 12, 0, 5, 1, tzinfo=UTC),
        datetime(2026, 1, 1, 14, 0, 5, 42, tzinfo=timezone(timedelta(hours=2))),
    ]
    fmt = _SQLiteTime()
    got = [fmt(value) for value in times]
    assert got == [
        "2026-01-01 12:00:05.999999",
        "2026-01-01 12:00:06.000000",
        "2026-01-01 12:00:05.000001",
        "2026-02-01 12:00:05.000001",
        "2027-01-01 12:00:05.000001",
        "2026-01-01 12:00:05.000042",
    ]
    assert got[:5] == [value.astimezone(UTC).isoformat(" ", "microseconds")[:26] for value in times[:5]]


async def test_a_record_round_trips_field_for_field(database: Database) -> None:
    repo = RequestLogRepo(database)
    record = make_record(
        1,
        trace_id="trace-1",
        span_id="span-1",
        parent_span_id="parent-1",
        client_key_hash="0123456789abcdef",
        stream=True,
        partial=True,
        cache_status="MISS",
        cached_tokens=3,
        reasoning_tokens=2,
        cost_usd=0.0125,
        ttft_ms=33.5,
        error_type="upstream_error",
        error_message="boom",
        metadata={"team": "search", "nested": {"a": [1, 2]}},
        identity_id="user-7",
        thread_id="thread-9",
    )
    await repo.insert_many([record])
    assert await repo.get("req-1") == record
    assert await repo.count() == 1


async def test_list_is_newest_first_filtered_and_paged(database: Database) -> None:
    repo = RequestLogRepo(database)
    records = [
        make_record(n, provider="openai" if n % 2 else "vllm", status=200 if n % 3 else 502, trace_id=f"t{n % 4}")
        for n in range(12)
    ]
    await repo.insert_many(records)
    newest_first = sorted(records, key=lambda r: r.created_at, reverse=True)
    assert [r.request_id for r in await repo.list(limit=5)] == [r.request_id for r in newest_first[:5]]
    assert [r.request_id for r in await repo.list(limit=5, offset=10)] == [r.request_id for r in newest_first[10:]]
    openai = await repo.list(provider="openai", limit=100)
    assert {r.request_id for r in openai} == {r.request_id for r in records if r.provider == "openai"}
    assert await repo.count(provider="openai") == 6
    failed = await repo.list(status=502)
    assert {r.request_id for r in failed} == {"req-0", "req-3", "req-6", "req-9"}
    assert {r.request_id for r in await repo.list(trace_id="t1")} == {"req-1", "req-5", "req-9"}
    assert await repo.count(trace_id="t1", provider="openai") == 3
    assert await repo.list(model="nope") == []
    assert await repo.get("req-404") is None


async def test_times_come_back_in_utc(database: Database) -> None:
    repo = RequestLogRepo(database)
    paris = timezone(timedelta(hours=1))
    await repo.insert_many([make_record(1, created_at=datetime(2026, 3, 1, 13, 0, tzinfo=paris))])
    got = await repo.get("req-1")
    assert got is not None and got.created_at == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert got.created_at.tzinfo is not None and got.created_at.utcoffset() == timedelta(0)


async def test_a_reused_request_id_returns_the_newest(database: Database) -> None:
    repo = RequestLogRepo(database)
    await repo.insert_many([make_record(1, status=502), make_record(2, request_id="req-1", status=200)])
    got = await repo.get("req-1")
    assert got is not None and got.status == 200


async def test_identities_are_counted_across_batches(database: Database) -> None:
    repo = RequestLogRepo(database)
    await repo.insert_many([make_record(1, identity_id="u1"), make_record(5, identity_id="u1"), make_record(3)])
    await repo.insert_many([make_record(9, identity_id="u1"), make_record(2, identity_id="u2")])
    u1 = await repo.identity("u1")
    assert u1 is not None and u1["request_count"] == 3
    assert u1["first_seen_at"] == datetime(2026, 1, 1, 12, 0, 1, tzinfo=UTC)
    assert u1["last_seen_at"] == datetime(2026, 1, 1, 12, 0, 9, tzinfo=UTC)
    u2 = await repo.identity("u2")
    assert u2 is not None and u2["request_count"] == 1
    assert await repo.identity("nobody") is None


async def test_a_large_batch_is_one_write(database: Database) -> None:
    repo = RequestLogRepo(database)
    await repo.insert_many([make_record(n, request_id=f"bulk-{n}") for n in range(500)])
    await repo.insert_many([])
    assert await repo.count() == 500


async def test_migrations_are_idempotent_and_safe_to_race(database: Database) -> None:
    url = database.url.render_as_string(hide_password=False)
    if database.schema:
        url += f"?schema={database.schema}"
    others = [Database(url) for _ in range(3)]
    try:
        await asyncio.gather(*(db.migrate() for db in others))
        await database.migrate()
    finally:
        for db in others:
            await db.close()
    async with database.begin() as conn:
        version = (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).scalar_one()
    assert version == head_revision()


async def test_a_replayed_batch_is_stored_once_and_its_identities_counted_once(database: Database) -> None:
    """A batch written, then written again (its commit's answer was lost; the spool replays it), with new
    records mixed in: each record is stored once, and an identity's count grows by its new records only."""
    repo = RequestLogRepo(database)
    first = [make_record(n, identity_id="user-1") for n in range(3)]
    await repo.insert_many(first)
    newer = [make_record(n, identity_id="user-1") for n in range(3, 5)]
    await repo.insert_many([*first, *newer, newer[0]])
    assert await repo.count() == 5
    identity = await repo.identity("user-1")
    assert identity is not None and identity["request_count"] == 5
    await repo.insert_many(first)  # all stored already
    assert await repo.count() == 5


async def test_a_record_the_database_refuses_raises_record_rejected(database: Database) -> None:
    repo = RequestLogRepo(database)
    with pytest.raises(RecordRejected):
        await repo.insert_many([make_record(1), make_record(2, path=None)])
    assert await repo.count() == 0


async def test_writes_before_the_schema_is_ready_say_storage_unavailable(database: Database) -> None:
    repo = RequestLogRepo(database)
    database.ready = False
    with pytest.raises(StorageUnavailable):
        await repo.insert_many([make_record(1)])
    database.ready = True
