"""Objects kept as numbered, immutable versions (`VersionedRows`): one table row per version, every history in
memory through a `StateSync` namespace. A write checks, inside its transaction, that the newest stored version is
the one before its own, so two writers (workers or instances) racing on one key cannot both write a version; and
every write first catches up with the database, so no decision (exists, missing, unchanged) rests on a stale copy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy import RowMapping
from sqlalchemy.exc import IntegrityError

from portico.storage.connection import Connection
from portico.storage.statements import delete_rows
from portico.storage.synced import Statements, StateSync

_ATTEMPTS = 3  # lost races an update retries before answering `busy`


class Versioned(Protocol):
    @property
    def version(self) -> int: ...


V = TypeVar("V", bound=Versioned)
Refusal = Callable[[str], Exception]


@dataclass(frozen=True)
class VersionTable(Generic[V]):
    """How one kind of object is stored: `table` holds a row per version, keyed by (`key_column`, `version`);
    `from_row(key, row, earlier)` builds a version from its row and the versions before it, `to_row` gives a
    version's row. The refusals name the key: `exists` (create finds it taken, here or by a concurrent writer),
    `missing` (update of an unknown key), `busy` (an update lost every retry to concurrent writers)."""

    table: sa.Table
    key_column: str
    from_row: Callable[[str, RowMapping, Sequence[V]], V]
    to_row: Callable[[V], dict[str, Any]]
    exists: Refusal
    missing: Refusal
    busy: Refusal


class _Stale(Exception):
    """The database holds a newer version than this process has loaded."""


class VersionedRows(Generic[V]):
    """`data` maps key → every version, oldest first (numbered 1, 2, 3, ... and never renumbered)."""

    def __init__(self, sync: StateSync, name: str, kind: VersionTable[V]) -> None:
        self.sync = sync
        self.kind = kind
        self._ns = sync.namespace(name, self._load)

    @property
    def data(self) -> dict[str, tuple[V, ...]]:
        return self._ns.data

    async def create(self, key: str, first: V) -> V:
        await self.sync.catch_up()  # a key deleted through another worker is free again
        if key in self._ns.data:
            raise self.kind.exists(key)
        try:
            await self.sync.write(self._ns, key, (first,), self._insert(key, first))
        except (IntegrityError, _Stale):
            raise self.kind.exists(key) from None
        return first

    async def update(self, key: str, successor: Callable[[tuple[V, ...]], V | None]) -> tuple[V, bool]:
        """The version `successor(history)` builds, or (None) the latest unchanged; returns (latest, whether new).
        After a lost race `successor` is asked again, since the version it built on is no longer the latest.
        The copy is brought up to date first: "unchanged" (no write) must compare with the stored latest, not with
        one this process has not reloaded yet (a rollback decided on a stale copy answered 200 and wrote nothing)."""
        await self.sync.catch_up()
        for _ in range(_ATTEMPTS):
            history = self._ns.data.get(key)
            if history is None:
                raise self.kind.missing(key)
            new = successor(history)
            if new is None:
                return history[-1], False
            try:
                await self.sync.write(self._ns, key, (*history, new), self._insert(key, new))
            except (IntegrityError, _Stale):  # another worker wrote first: load its version, then decide again
                await self.sync.refresh()
                continue
            return new, True
        raise self.kind.busy(key)

    async def delete(self, key: str) -> bool:
        """Removes every version (a later create of the same key starts again at version 1)."""
        await self.sync.catch_up()  # a key created through another worker is there to delete
        if key not in self._ns.data:
            return False
        await self.sync.write(self._ns, key, None, delete_rows(self.kind.table, self.kind.key_column, key))
        return True

    async def _load(self, conn: Connection) -> dict[str, tuple[V, ...]]:
        table, key_column = self.kind.table, self.kind.key_column
        query = table.select().order_by(table.c[key_column], table.c.version)
        grouped: dict[str, list[V]] = {}
        for row in (await conn.execute(query)).mappings().all():
            key = str(row[key_column])
            earlier = grouped.setdefault(key, [])
            earlier.append(self.kind.from_row(key, row, earlier))
        return {key: tuple(found) for key, found in grouped.items()}

    def _insert(self, key: str, new: V) -> Statements:
        table, row = self.kind.table, self.kind.to_row(new)
        newest_query = sa.select(sa.func.max(table.c.version)).where(table.c[self.kind.key_column] == key)

        async def run(conn: Connection) -> None:
            newest = (await conn.execute(newest_query)).scalar()
            if int(newest or 0) != new.version - 1:
                raise _Stale(key)
            await conn.execute(table.insert(), [row])

        return run
