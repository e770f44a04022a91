"""Write statements for `StateSync` namespaces (storage/synced.py): drop a key's rows, or replace its one row.

Each runs inside the caller's transaction; delete-then-insert works the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from portico.storage.connection import Connection
from portico.storage.synced import Statements


def delete_rows(table: sa.Table, column: str, value: str) -> Statements:
    """Every row of `table` whose `column` is `value`."""

    async def run(conn: Connection) -> None:
        await conn.execute(table.delete().where(table.c[column] == value))

    return run


def replace_row(table: sa.Table, column: str, row: dict[str, Any]) -> Statements:
    """`row` in place of whatever row has the same `column` value."""

    async def run(conn: Connection) -> None:
        await conn.execute(table.delete().where(table.c[column] == row[column]))
        await conn.execute(table.insert(), [row])

    return run
