"""Knowledge bases' settings (`KnowledgeBaseStore`): key → `KnowledgeBase`, one JSON row each, kept in step across
workers by `StateSync` like stored guardrails. The request path's lookup is a dict read with no I/O; an admin path
catches up with the database first, so a base created or deleted through another worker is seen at once.

Datasources and chunks are not held here (`storage/knowledge_chunks.py` reads them on demand).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from sqlalchemy.exc import IntegrityError

from portico.core.errors import NotFound, RequestError
from portico.core.knowledge import KnowledgeBase, RerankSettings
from portico.storage.connection import Connection
from portico.storage.statements import delete_rows
from portico.storage.synced import Statements, StateSync
from portico.storage.tables import knowledge_bases


class KnowledgeBaseExists(RequestError):
    http_status = 409
    type = "conflict_error"


def knowledge_base_not_found(key: str) -> NotFound:
    return NotFound(f"Knowledge base '{key}' not found.", code="knowledge_base_not_found", param="knowledge_id")


@dataclasses.dataclass(frozen=True, slots=True)
class StoredBase:
    base: KnowledgeBase
    created_at: float
    updated_at: float


def base_config(base: KnowledgeBase) -> dict[str, Any]:
    """What the `config` column holds: every setting but the key and id (they are columns)."""
    config = dataclasses.asdict(base)
    config.pop("key")
    config.pop("id")
    return config


def base_from_config(key: str, base_id: str, config: dict[str, Any]) -> KnowledgeBase:
    fields = {f.name for f in dataclasses.fields(KnowledgeBase)} - {"key", "id", "rerank"}
    rerank = config.get("rerank")
    return KnowledgeBase(
        key=key,
        id=base_id,
        rerank=RerankSettings(**rerank) if isinstance(rerank, dict) else None,
        **{k: v for k, v in config.items() if k in fields},
    )


async def _load(conn: Connection) -> dict[str, StoredBase]:
    rows = (await conn.execute(knowledge_bases.select())).mappings().all()
    return {
        str(row["key"]): StoredBase(
            base_from_config(str(row["key"]), str(row["id"]), dict(row["config"])),
            float(row["created_at"]),
            float(row["updated_at"]),
        )
        for row in rows
    }


class KnowledgeBaseStore:
    """Without a `StateSync` on a database, bases live in this process only (tests, tools)."""

    def __init__(self, sync: StateSync | None = None) -> None:
        self.sync = sync or StateSync(None)
        self._ns = self.sync.namespace("knowledge_bases", _load)

    def get(self, key: str) -> StoredBase | None:
        """The request path's lookup: a dict read, no I/O."""
        return self._ns.data.get(key)

    async def find(self, key: str) -> StoredBase | None:
        """For admin paths: a key this copy does not know may have been created through another worker."""
        if key not in self._ns.data:
            await self.sync.catch_up()
        return self.get(key)

    def all(self) -> list[StoredBase]:
        return [self._ns.data[key] for key in sorted(self._ns.data)]

    async def create(self, base: KnowledgeBase) -> StoredBase:
        """`KnowledgeBaseExists` (409) if the key is taken, here or by a concurrent writer (the primary key)."""
        await self.sync.catch_up()
        if base.key in self._ns.data:
            raise _exists(base.key)
        now = time.time()
        stored = StoredBase(base, now, now)
        row = {"key": base.key, "id": base.id, "config": base_config(base), "created_at": now, "updated_at": now}
        row["chunks_version"] = 0

        async def insert(conn: Connection) -> None:
            await conn.execute(knowledge_bases.insert(), [row])

        try:
            await self.sync.write(self._ns, base.key, stored, insert)
        except IntegrityError:
            raise _exists(base.key) from None
        return stored

    async def update(self, base: KnowledgeBase) -> StoredBase:
        """Replace the settings of an existing base (same key and id)."""
        current = await self.find(base.key)
        if current is None:
            raise knowledge_base_not_found(base.key)
        stored = StoredBase(base, current.created_at, time.time())
        values = {"config": base_config(base), "updated_at": stored.updated_at}

        async def update(conn: Connection) -> None:
            await conn.execute(knowledge_bases.update().where(knowledge_bases.c.key == base.key).values(values))

        await self.sync.write(self._ns, base.key, stored, update)
        return stored

    async def delete(self, key: str, also: Statements | None = None) -> bool:
        """Remove the base; `also(conn)` runs in the same transaction (its datasources and chunks)."""
        if await self.find(key) is None:
            return False
        drop = delete_rows(knowledge_bases, "key", key)

        async def statements(conn: Connection) -> None:
            await drop(conn)
            if also is not None:
                await also(conn)

        await self.sync.write(self._ns, key, None, statements)
        return True


def _exists(key: str) -> KnowledgeBaseExists:
    return KnowledgeBaseExists(f"Knowledge base '{key}' already exists.", code="knowledge_base_exists", param="key")
