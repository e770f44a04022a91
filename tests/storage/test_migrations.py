"""Two ways to the newest schema: a new database is created from `tables.py` and stamped; an existing one is
upgraded by Alembic. Both must end in the same schema, and only the second may load Alembic."""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from portico.storage import db as db_module
from portico.storage.db import Database, head_revision
from portico.storage.tables import metadata
from tests.storage.conftest import drop_schema, postgres_url


def _schema(connection: sa.Connection) -> dict[str, Any]:
    """Everything a migration could get wrong, per table, in a form that compares across two databases."""
    inspector = sa.inspect(connection)
    found: dict[str, Any] = {}
    for table in sorted(inspector.get_table_names()):
        if table.startswith("knowledge_chunks_fts"):  # SQLite's FTS5 index and its shadow tables (not in metadata)
            continue
        found[table] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"], c.get("default")) for c in inspector.get_columns(table)
            ],
            "primary_key": inspector.get_pk_constraint(table)["constrained_columns"],
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in inspector.get_indexes(table)
            ),
            "unique": sorted((u["name"], tuple(u["column_names"])) for u in inspector.get_unique_constraints(table)),
            "foreign_keys": sorted(
                (f["name"], tuple(f["constrained_columns"]), f["referred_table"])
                for f in inspector.get_foreign_keys(table)
            ),
        }
    found["alembic_version"]["rows"] = connection.execute(sa.text("SELECT version_num FROM alembic_version")).all()
    return found


async def _schema_of(db: Database) -> dict[str, Any]:
    async with db.begin() as conn:
        return await conn.run_sync(_schema)


async def _migrated_by_alembic(db: Database) -> None:
    """What `migrate()` does for a database that already exists: the migrations, revision by revision."""
    async with db.begin() as conn:
        if db.schema:
            await conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{db.schema}"'))
        await conn.run_sync(db_module._upgrade)


@pytest.fixture(params=["sqlite", "postgresql"])
async def two_databases(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Database, Database]]:
    """Two empty databases on the same backend."""
    if request.param == "sqlite":
        pair = (Database(f"sqlite:///{tmp_path / 'a.db'}"), Database(f"sqlite:///{tmp_path / 'b.db'}"))
        yield pair
        for db in pair:
            await db.close()
        return
    url = await postgres_url()
    schemas = [f"portico_test_{secrets.token_hex(6)}" for _ in range(2)]
    pair = (Database(f"{url}?schema={schemas[0]}"), Database(f"{url}?schema={schemas[1]}"))
    try:
        yield pair
    finally:
        for db, schema in zip(pair, schemas, strict=True):
            await db.close()
            await drop_schema(url, schema)


async def test_a_new_database_gets_the_schema_the_migrations_build(two_databases: tuple[Database, Database]) -> None:
    created, migrated = two_databases
    await created.migrate()
    await _migrated_by_alembic(migrated)

    expected = await _schema_of(migrated)
    assert set(expected) == {*metadata.tables, "alembic_version"}
    assert expected["alembic_version"]["rows"] == [(head_revision(),)]
    assert await _schema_of(created) == expected


async def test_a_created_database_is_current_for_alembic_too(two_databases: tuple[Database, Database]) -> None:
    """Stamped right, the migrations find nothing to do, and a second start changes nothing either."""
    created, _ = two_databases
    await created.migrate()
    before = await _schema_of(created)
    await _migrated_by_alembic(created)
    await created.migrate()
    assert await _schema_of(created) == before


_START = """
import asyncio, sys
from portico.storage.db import Database
db = Database(sys.argv[1])
asyncio.run(db.migrate())
asyncio.run(db.close())
print(",".join(sorted({m.split(".")[0] for m in sys.modules if m.split(".")[0] in ("alembic", "mako")})))
"""


def _start(url: str) -> str:
    """Migrate in a fresh interpreter and say which of Alembic's packages it loaded."""
    command = [sys.executable, "-c", _START, url]
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_only_an_existing_schema_that_must_change_loads_alembic(tmp_path: Path) -> None:
    new = f"sqlite:///{tmp_path / 'new.db'}"
    assert _start(new) == ""  # created from the tables
    assert _start(new) == ""  # already current

    old = tmp_path / "old.db"
    engine = sa.create_engine(f"sqlite:///{old}")
    with engine.begin() as conn:  # a database left at the first revision by an earlier release
        db_module._upgrade(conn, "0001")
    assert "alembic" in _start(f"sqlite:///{old}")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == head_revision()
        assert "virtual_keys" in sa.inspect(conn).get_table_names()
    engine.dispose()
