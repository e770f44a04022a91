"""The SQLite call-log writer: a batch is one transaction in the writer thread, a failed batch leaves nothing
behind and the next batch reconnects, and rows written raw read back through the SQLAlchemy repository."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from portico.storage.db import Database
from portico.storage.repos import RecordRejected, RequestLogRepo
from tests.storage.conftest import make_record


@pytest.fixture
async def repo(tmp_path: Path) -> AsyncIterator[RequestLogRepo]:
    """A call log on a SQLite file, so writes take the batch-writer thread (an in-memory database does not)."""
    db = Database(f"sqlite:///{tmp_path / 'portico.db'}")
    await db.migrate()
    repo = RequestLogRepo(db)
    yield repo
    await repo.close()
    await db.close()


async def test_records_and_identities_written_raw_read_back(repo: RequestLogRepo) -> None:
    first = [make_record(i, identity_id="user-1", attempts=({"status": 200},)) for i in range(3)]
    await repo.insert_many(first)
    await repo.insert_many([make_record(10, identity_id="user-1")])
    assert await repo.count() == 4
    stored = await repo.get("req-1")
    assert stored is not None
    assert stored.created_at == datetime(2026, 1, 1, 12, 0, 1, tzinfo=UTC)
    assert stored.attempts == ({"status": 200},)
    assert stored.stream is False
    identity = await repo.identity("user-1")
    assert identity is not None
    assert identity["request_count"] == 4
    assert identity["last_seen_at"] == datetime(2026, 1, 1, 12, 0, 10, tzinfo=UTC)


async def test_a_failed_batch_is_rolled_back_and_the_next_one_reconnects(repo: RequestLogRepo) -> None:
    await repo.insert_many([make_record(1)])
    with pytest.raises(RecordRejected):
        await repo.insert_many([make_record(3), make_record(2, path=None)])  # NOT NULL violated
    assert await repo.count() == 1  # the whole batch was rolled back
    await repo.insert_many([make_record(4)])
    assert await repo.count() == 2


async def test_a_batch_larger_than_one_insert_is_written_whole_and_in_order(repo: RequestLogRepo) -> None:
    records = [make_record(i, attempts=({"status": 200, "n": i},)) for i in range(123)]  # 32 + 32 + 32 + 16 + 4 + 2 + 1
    await repo.insert_many(records)
    assert await repo.count() == 123
    for i in (0, 31, 32, 95, 96, 111, 112, 119, 120, 121, 122):
        stored = await repo.get(f"req-{i}")
        assert stored is not None and stored.attempts == ({"status": 200, "n": i},)
        assert stored.created_at == records[i].created_at


async def test_batches_of_any_size_use_only_power_of_two_statements(repo: RequestLogRepo) -> None:
    """Each distinct row count is a statement the connection compiles and caches; six cover every batch."""
    written = 0
    for size in range(1, 71):
        await repo.insert_many([make_record(written + i) for i in range(size)])
        written += size
    assert await repo.count() == written
    assert repo._writer is not None
    assert set(repo._writer._statements) == {1, 2, 4, 8, 16, 32}


async def test_empty_and_zero_values_are_stored_as_sent(repo: RequestLogRepo, tmp_path: Path) -> None:
    """None and bool are bound through the writer's own adapters: None must be a real SQL NULL, and an empty
    string, the text '0', a zero cost and False must survive as themselves, not as NULL."""
    nulls = make_record(1, trace_id=None, provider=None, cost_usd=None, ttft_ms=None, stream=False, partial=False)
    lookalikes = make_record(
        2, trace_id="", provider="0", error_message="", cost_usd=0.0, ttft_ms=0.0, stream=True, partial=True
    )
    await repo.insert_many([nulls, lookalikes])
    for sent in (nulls, lookalikes):
        stored = await repo.get(sent.request_id)
        assert stored is not None
        for field in ("trace_id", "provider", "error_message", "cost_usd", "ttft_ms", "stream", "partial"):
            assert getattr(stored, field) == getattr(sent, field), field
            assert type(getattr(stored, field)) is type(getattr(sent, field)), field
    with sqlite3.connect(tmp_path / "portico.db") as conn:
        typed = conn.execute(
            "SELECT typeof(trace_id), typeof(provider), typeof(cost_usd), typeof(ttft_ms), stream, partial "
            "FROM request_logs ORDER BY request_id"
        ).fetchall()
    assert typed == [("null", "null", "null", "null", 0, 0), ("text", "text", "real", "real", 1, 1)]
