"""A migrated `Database` on each backend: SQLite in a temporary file, and the real PostgreSQL at 127.0.0.1:5432
(in a schema of its own, dropped afterwards). PostgreSQL tests skip only when the server does not answer."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from portico.core.records import CallRecord
from portico.storage.db import Database

PG_ROLES = ("postgres", "root")


async def postgres_url() -> str:
    """The first role that may connect to the `test` database, or skip."""
    problems = []
    for role in PG_ROLES:
        url = f"postgresql://{role}@127.0.0.1:5432/test"
        try:
            conn = await asyncpg.connect(url, timeout=5)
        except (OSError, asyncpg.PostgresError) as exc:
            problems.append(f"{role}: {exc}")
            continue
        await conn.close()
        return url
    pytest.skip(f"PostgreSQL at 127.0.0.1:5432 does not answer ({'; '.join(problems)})")


async def drop_schema(url: str, schema: str) -> None:
    conn = await asyncpg.connect(url, timeout=5)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture
async def pg_schema_url() -> AsyncIterator[str]:
    """`postgresql://.../test?schema=portico_test_<random>`; the schema is dropped after the test."""
    url = await postgres_url()
    schema = f"portico_test_{secrets.token_hex(6)}"
    yield f"{url}?schema={schema}"
    await drop_schema(url, schema)


@pytest.fixture(params=["sqlite", "postgresql"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'portico.db'}"
        db = Database(url)
        await db.migrate()
        yield db
        await db.close()
        return
    url = await postgres_url()
    schema = f"portico_test_{secrets.token_hex(6)}"
    db = Database(f"{url}?schema={schema}")
    try:
        await db.migrate()
        yield db
    finally:
        await db.close()
        await drop_schema(url, schema)


def make_record(n: int = 0, **changes: Any) -> CallRecord:
    values: dict[str, Any] = {
        "id": secrets.token_hex(16),
        "created_at": datetime(2026, 1, 1, 12, 0, n % 60, tzinfo=UTC),
        "request_id": f"req-{n}",
        "path": "/v1/chat/completions",
        "dialect": "openai",
        "status": 200,
        "provider": "openai",
        "model": "gpt-4o",
        "requested_model": "openai/gpt-4o",
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "total_tokens": 15,
        "latency_ms": 12.5,
        "overhead_ms": 0.4,
        "attempts": ({"provider": "openai", "model": "gpt-4o", "status": 200, "latency_ms": 12.0, "error": None},),
        "metadata": {"team": "search"},
    }
    values.update(changes)
    return CallRecord(**values)
