"""SQLite on threads (`storage/connection.py`): transactions that hold the write lock across awaits never starve
each other, a cancelled transaction is rolled back and its connection given back, and rows are read where the
statement ran."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from portico.storage.connection import ThreadedEngine
from portico.storage.db import Database


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'p.db'}", statement_timeout=2.0)  # a 2 s busy timeout
    await database.migrate()
    try:
        yield database
    finally:
        await database.close()


def _engine(db: Database) -> ThreadedEngine:
    assert isinstance(db.engine, ThreadedEngine)
    return db.engine


async def _versions(db: Database) -> dict[str, int]:
    async with db.begin() as conn:
        rows = (await conn.execute(sa.text("SELECT namespace, version FROM state_versions"))).all()
    return {str(name): int(version) for name, version in rows}


async def test_writers_that_hold_the_lock_across_awaits_all_finish(db: Database) -> None:
    """Every transaction writes, awaits, then writes again: while one holds SQLite's write lock, the others wait
    in their statements. With one shared pool of threads the waiters took every thread, the holder's second
    write could not run, and they failed with "database is locked" after the busy timeout."""

    async def writer(n: int) -> None:
        async with db.begin() as conn:
            await conn.execute(
                sa.text("INSERT INTO state_versions (namespace, version) VALUES (:n, 1)"), {"n": f"w{n}"}
            )
            await asyncio.sleep(0.005)
            await conn.execute(sa.text("UPDATE state_versions SET version = 2 WHERE namespace = :n"), {"n": f"w{n}"})

    started = time.monotonic()
    await asyncio.gather(*(writer(n) for n in range(20)))
    assert time.monotonic() - started < 2  # well inside one busy timeout: nobody waited one out
    assert await _versions(db) == {f"w{n}": 2 for n in range(20)}
    assert _engine(db).sync_engine.pool.checkedout() == 0


async def test_a_cancelled_transaction_is_rolled_back_and_its_connection_given_back(db: Database) -> None:
    entered = asyncio.Event()

    async def stuck() -> None:
        async with db.begin() as conn:
            await conn.execute(sa.text("INSERT INTO state_versions (namespace, version) VALUES ('gone', 1)"))
            entered.set()
            await asyncio.sleep(60)

    task = asyncio.create_task(stuck())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with db.begin() as conn:  # the write lock is free again: this would wait 2 s and fail otherwise
        await conn.execute(sa.text("INSERT INTO state_versions (namespace, version) VALUES ('kept', 1)"))
    assert await _versions(db) == {"kept": 1}
    assert _engine(db).sync_engine.pool.checkedout() == 0


async def test_a_failing_block_rolls_back_and_a_failing_statement_raises_the_drivers_error(db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with db.begin() as conn:
            await conn.execute(sa.text("INSERT INTO state_versions (namespace, version) VALUES ('half', 1)"))
            raise RuntimeError("the caller's own failure")
    with pytest.raises(sa.exc.IntegrityError):
        async with db.begin() as conn:
            await conn.execute(sa.text("INSERT INTO state_versions (namespace, version) VALUES ('one', 1)"))
            await conn.execute(sa.text("INSERT INTO state_versions (namespace, version) VALUES ('one', 1)"))
    assert await _versions(db) == {}


async def test_rows_are_buffered_and_the_rest_of_the_interface_works(db: Database) -> None:
    async with db.begin() as conn:
        assert conn.dialect.name == "sqlite"
        await conn.exec_driver_sql(
            "INSERT INTO state_versions (namespace, version) VALUES (?, ?)", [("a", 1), ("b", 2), ("c", 3)]
        )
        result = await conn.execute(sa.text("SELECT namespace FROM state_versions ORDER BY namespace"))
        tables = await conn.run_sync(lambda sync: sorted(sa.inspect(sync).get_table_names()))
    await _engine(db).dispose()  # the connection itself is closed now: a cursor still to be read would fail
    assert [row.namespace for row in result] == ["a", "b", "c"]  # read after the connection went back
    assert "state_versions" in tables


async def test_an_in_memory_database_has_one_connection_and_its_users_take_turns() -> None:
    db = Database("sqlite://")
    await db.migrate()
    try:

        async def bump(n: int) -> None:
            async with db.begin() as conn:
                await conn.execute(sa.text("INSERT INTO state_versions (namespace, version) VALUES (:n, 1)"), {"n": n})
                await asyncio.sleep(0)

        await asyncio.gather(*(bump(n) for n in range(10)))
        assert len(await _versions(db)) == 10
    finally:
        await db.close()


async def test_a_checkout_whose_waiter_was_cancelled_is_given_back(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = _engine(db)
    connect = engine.sync_engine.connect

    def slow_connect() -> sa.Connection:
        time.sleep(0.3)
        return connect()

    monkeypatch.setattr(engine.sync_engine, "connect", slow_connect)

    async def waiter() -> None:
        async with db.begin():
            raise AssertionError("never reached: cancelled during the checkout")

    pool = engine.sync_engine.pool
    given_back_on: list[str] = []
    sa.event.listen(pool, "checkin", lambda *_: given_back_on.append(threading.current_thread().name))
    task = asyncio.create_task(waiter())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(100):
        await asyncio.sleep(0.02)
        if given_back_on:
            break
    assert (pool.checkedout(), pool.checkedin()) == (0, 1)
    # closed by its lane, not dropped for the garbage collector to find on the event loop's thread
    assert len(given_back_on) == 1 and given_back_on[0].startswith("portico-db"), given_back_on


async def test_transactions_run_side_by_side_up_to_the_pools_size(db: Database) -> None:
    """WAL lets readers run beside the writer: as many transactions are open at once as the pool has connections
    (a limit of one would hold every admin read and state-sync poll behind the slowest query), and no more."""
    limit = _engine(db).connections
    inside = peak = 0
    everyone_in = asyncio.Event()

    async def reader() -> None:
        nonlocal inside, peak
        async with db.begin() as conn:
            await conn.execute(sa.text("SELECT count(*) FROM state_versions"))
            inside += 1
            peak = max(peak, inside)
            if inside == limit:
                everyone_in.set()
            await asyncio.wait_for(everyone_in.wait(), 5)
            inside -= 1

    await asyncio.gather(*(reader() for _ in range(limit + 3)))
    assert (limit, peak) == (15, 15)
