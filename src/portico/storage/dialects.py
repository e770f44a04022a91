"""What differs by database engine, written once: the upsert statement, the JSON column type and the predicates
of partial indexes.

SQLAlchemy's PostgreSQL dialect costs 2.3 MiB of resident memory to import, and a gateway on the embedded SQLite
default never talks to PostgreSQL. So nothing at module level names it: not `postgresql.insert`, not
`JSON().with_variant(JSONB())`, not even an `Index(..., postgresql_where=...)` (SQLAlchemy imports a dialect to
check its keyword arguments). Each helper here imports the dialect when a PostgreSQL statement, column type or
schema is first built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

if TYPE_CHECKING:
    from sqlalchemy.dialects.postgresql import Insert as PostgresInsert
    from sqlalchemy.dialects.sqlite import Insert as SqliteInsert

_PARTIAL: list[tuple[sa.Index, str]] = []
"""Every `partial_index` with its predicate, for `postgresql_predicates`."""


def upsert(table: sa.Table, backend: str) -> PostgresInsert | SqliteInsert:
    """`INSERT … ON CONFLICT` into `table` on `backend` ("postgresql" or "sqlite"): both dialects spell
    `on_conflict_do_update` and `excluded` alike, so a caller builds one statement for either."""
    if backend == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgres_insert

        return postgres_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


class JsonDocument(sa.types.TypeDecorator[Any]):
    """JSON, stored as `jsonb` on PostgreSQL: a metadata filter reads every candidate row's JSON, which `json`
    would re-parse per operator."""

    impl = sa.JSON
    cache_ok = True

    def coerce_compared_value(self, op: Any, value: Any) -> Any:
        """What JSON does: a value compared with an element of the document (`->>` text, a number) binds as its
        own type. TypeDecorator's default would bind it as a JSON document (`text = jsonb` on PostgreSQL)."""
        return self.impl_instance.coerce_compared_value(op, value)

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import JSONB

            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(sa.JSON())


def partial_index(name: str, columns: tuple[str, ...], where: str) -> sa.Index:
    """An index over the rows where `where` holds. SQLite's predicate is given here; PostgreSQL's is added by
    `postgresql_predicates` when a PostgreSQL schema is created."""
    index = sa.Index(name, *columns, sqlite_where=sa.text(where))
    _PARTIAL.append((index, where))
    return index


def postgresql_predicates() -> None:
    """Give every partial index its PostgreSQL predicate (idempotent); called before a PostgreSQL schema is
    created from the tables. Writing `dialect_kwargs` is SQLAlchemy's documented way to add a dialect option."""
    for index, where in _PARTIAL:
        index.dialect_kwargs["postgresql_where"] = sa.text(where)
