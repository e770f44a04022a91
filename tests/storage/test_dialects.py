"""Engine differences written once (`storage/dialects.py`): a gateway on SQLite never loads SQLAlchemy's
PostgreSQL dialect (2.3 MiB resident), and a schema created on PostgreSQL still gets its jsonb column and the
predicates of its partial indexes, as the migrations build them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from portico.storage.db import Database

_SERVE_ON_SQLITE = """
import asyncio, sys
from portico.app import create_app
from portico.config.schema import Settings

async def main() -> None:
    app = create_app(Settings.model_validate({"storage": {"url": sys.argv[1]}}))
    await app.startup()
    await app.shutdown()

asyncio.run(main())
print(sorted(m for m in sys.modules if m.startswith("sqlalchemy.dialects.")))
print(sorted(m for m in sys.modules if m.startswith(("sqlalchemy.ext.asyncio", "sqlalchemy.orm", "aiosqlite", "greenlet"))))
"""


def test_a_gateway_on_sqlite_never_imports_the_postgresql_dialect_or_the_orm(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'portico.db'}"
    for _ in range(2):  # a new database, created from the tables; then the same one, already current
        command = [sys.executable, "-c", _SERVE_ON_SQLITE, url]
        done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr[-2000:]
        dialects, async_and_orm = done.stdout.strip().splitlines()[-2:]
        assert "sqlalchemy.dialects.sqlite" in dialects and "postgresql" not in dialects, dialects
        assert async_and_orm == "[]"


async def test_a_schema_created_on_postgresql_has_jsonb_and_partial_indexes(pg_schema_url: str) -> None:
    db = Database(pg_schema_url)
    try:
        await db.migrate()
        async with db.begin() as conn:
            indexes = dict(
                (
                    await conn.execute(
                        sa.text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'request_logs'")
                    )
                ).all()
            )
            kind = await conn.scalar(
                sa.text(
                    "SELECT data_type FROM information_schema.columns WHERE table_schema = current_schema() "
                    "AND table_name = 'knowledge_chunks' AND column_name = 'metadata'"
                )
            )
    finally:
        await db.close()
    assert indexes["ix_request_logs_identity_created_at"].endswith("WHERE (identity_id IS NOT NULL)")
    assert indexes["ix_request_logs_thread_created_at"].endswith("WHERE (thread_id IS NOT NULL)")
    assert kind == "jsonb"
