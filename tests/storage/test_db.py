"""storage.url → an async engine: the driver mapping, embedded SQLite's settings, in-memory databases."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from portico.storage.db import Database, engine_url
from portico.storage.repos import RequestLogRepo
from tests.storage.conftest import make_record


@pytest.mark.parametrize(
    ("url", "driver", "backend"),
    [
        ("sqlite:///data/portico.db", "sqlite+pysqlite", "sqlite"),
        ("sqlite+aiosqlite:///data/portico.db", "sqlite+pysqlite", "sqlite"),
        ("sqlite:///:memory:", "sqlite+pysqlite", "sqlite"),
        ("postgresql://u:p@db:5432/portico", "postgresql+asyncpg", "postgresql"),
        ("postgres://u:p@db/portico", "postgresql+asyncpg", "postgresql"),
        ("postgresql+asyncpg://db/portico", "postgresql+asyncpg", "postgresql"),
    ],
)
def test_urls_map_to_async_drivers(url: str, driver: str, backend: str) -> None:
    parsed, found = engine_url(url)
    assert parsed.drivername == driver and found == backend


@pytest.mark.parametrize("url", ["mysql://db/x", "postgresql+psycopg2://db/x", "not a url"])
def test_unsupported_urls_are_refused_by_name(url: str) -> None:
    with pytest.raises(ValueError, match=r"storage\.url"):
        engine_url(url)


def test_a_schema_must_be_a_plain_identifier() -> None:
    with pytest.raises(ValueError, match="schema"):
        Database('postgresql://db/x?schema=a";drop')
    db = Database("postgresql://u:secret@db/x?schema=portico")
    assert db.schema == "portico" and "schema" not in db.url.query


async def test_file_sqlite_uses_wal_and_a_busy_timeout(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'nested' / 'dir' / 'portico.db'}")
    await db.migrate()
    try:
        async with db.begin() as conn:
            assert (await conn.execute(sa.text("PRAGMA journal_mode"))).scalar_one() == "wal"
            assert (await conn.execute(sa.text("PRAGMA busy_timeout"))).scalar_one() == 5000
        assert db.ready and await db.ping()
    finally:
        await db.close()
    assert (tmp_path / "nested" / "dir" / "portico.db").exists()


async def test_in_memory_sqlite_keeps_its_data_across_connections() -> None:
    db = Database("sqlite:///:memory:")
    await db.migrate()
    try:
        repo = RequestLogRepo(db)
        await repo.insert_many([make_record(1)])
        assert await repo.count() == 1
        assert (await repo.get("req-1")) is not None
    finally:
        await db.close()


async def test_a_second_process_sees_the_same_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'portico.db'}"
    first, second = Database(url), Database(url)
    await first.migrate()
    await second.migrate()
    try:
        await RequestLogRepo(first).insert_many([make_record(1)])
        assert await RequestLogRepo(second).count() == 1
    finally:
        await first.close()
        await second.close()


async def test_an_unreachable_database_fails_ping_without_raising() -> None:
    db = Database("postgresql://nobody@127.0.0.1:1/none")
    try:
        assert await db.ping() is False
    finally:
        await db.close()
