"""Reads over the call log by who asked and in which conversation: identities with their totals and profiles,
and a thread's requests oldest first. Totals are summed from the records themselves, so they always agree with
`/v1/logs`. `IdentityProfiles` keeps each identity's profile (display name, email, logo URL, tags, metadata) as
last sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from portico.core.records import CallRecord, LogFilter
from portico.storage.db import Database
from portico.storage.dialects import upsert
from portico.storage.repos import RequestLogRepo
from portico.storage.tables import identities, request_logs

log = logging.getLogger("portico.storage")

PROFILE_FIELDS = ("display_name", "email", "logo_url", "tags", "metadata")
"""The spec's `identity`/`contact` fields besides `id` (`logo_url` is the spec's name for the avatar)."""
_MEMO_LIMIT = 10_000

_TOTALS = (
    sa.func.count(request_logs.c.id).label("requests"),
    sa.func.coalesce(sa.func.sum(request_logs.c.prompt_tokens), 0).label("prompt_tokens"),
    sa.func.coalesce(sa.func.sum(request_logs.c.completion_tokens), 0).label("completion_tokens"),
    sa.func.coalesce(sa.func.sum(request_logs.c.total_tokens), 0).label("total_tokens"),
    sa.func.sum(request_logs.c.cost_usd).label("cost_usd"),
    sa.func.count(request_logs.c.cost_usd).label("priced_requests"),
)


class PeopleReads:
    def __init__(self, db: Database, logs: RequestLogRepo) -> None:
        self.db, self.logs = db, logs

    async def identities(self, *, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        """Most recently seen first, each with its totals; and how many identities there are."""
        totals = (
            sa.select(request_logs.c.identity_id, *_TOTALS)
            .where(request_logs.c.identity_id.is_not(None))
            .group_by(request_logs.c.identity_id)
            .subquery()
        )
        query = (
            sa.select(identities, *(c for c in totals.c if c.name != "identity_id"))
            .outerjoin(totals, totals.c.identity_id == identities.c.id)
            .order_by(identities.c.last_seen_at.desc(), identities.c.id)
            .limit(limit)
            .offset(offset)
        )
        async with self.db.begin() as conn:
            rows = (await conn.execute(query)).mappings().all()
            total = int((await conn.execute(sa.select(sa.func.count()).select_from(identities))).scalar_one())
        return [_identity(row) for row in rows], total

    async def identity(self, identity_id: str) -> dict[str, Any] | None:
        totals = sa.select(*_TOTALS).where(request_logs.c.identity_id == identity_id)
        async with self.db.begin() as conn:
            row = (await conn.execute(sa.select(identities).where(identities.c.id == identity_id))).mappings().first()
            if row is None:
                return None
            summed = (await conn.execute(totals)).mappings().one()
        return _identity({**row, **summed})

    async def thread(self, thread_id: str, *, limit: int, offset: int) -> tuple[list[CallRecord], int]:
        """The thread's requests in the order they arrived."""
        where = LogFilter(thread_id=thread_id)
        records = await self.logs.list(limit=limit, offset=offset, where=where, oldest_first=True)
        return records, await self.logs.count(where=where)


def _identity(row: Any) -> dict[str, Any]:
    """`cost_usd` sums the priced requests only; `priced_requests` says how many of them had a price."""
    return {
        "id": row["id"],
        "first_seen_at": _iso(row["first_seen_at"]),
        "last_seen_at": _iso(row["last_seen_at"]),
        "request_count": int(row["request_count"]),
        "prompt_tokens": int(row["prompt_tokens"] or 0),
        "completion_tokens": int(row["completion_tokens"] or 0),
        "total_tokens": int(row["total_tokens"] or 0),
        "cost_usd": float(row["cost_usd"]) if row["cost_usd"] is not None else None,
        "priced_requests": int(row["priced_requests"] or 0),
        **{name: row.get(name) for name in PROFILE_FIELDS},
    }


Profile = tuple[Any, ...]
"""An identity's profile fields in `PROFILE_FIELDS` order; None where the request did not send one."""


class IdentityProfiles:
    """Upserts the profile an identity is sent with, off the request path and only when it changed.

    A request naming an identity by id alone costs one dict lookup. A profile differing from the last one seen
    is queued and written by one background task, which creates the identity's row if the call log has not
    yet (request count 0: the call log's own upsert counts the request). Fields a request leaves out keep
    their stored values. A failed write is logged and forgotten, so the next request with the profile retries."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._seen: dict[str, Profile] = {}
        self._pending: dict[str, tuple[Profile, datetime]] = {}
        self._task: asyncio.Task[None] | None = None

    def note(self, identity: Mapping[str, Any], seen_at: datetime) -> None:
        if len(identity) < 2:  # `{"id": ...}` only: nothing to keep
            return
        identity_id = identity.get("id")
        if identity_id is None:
            return
        key = str(identity_id)
        profile = tuple(identity.get(name) for name in PROFILE_FIELDS)
        if self._seen.get(key) == profile or not any(value is not None for value in profile):
            return
        if len(self._seen) >= _MEMO_LIMIT:
            self._seen.clear()
        self._seen[key] = profile
        self._pending[key] = (profile, seen_at)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._flush(), name="portico-identity-profiles")

    async def close(self) -> None:
        """Write what is queued (shutdown)."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, {}
            try:
                async with self.db.begin() as conn:
                    for key, (profile, seen_at) in batch.items():
                        await conn.execute(self._upsert(key, profile, seen_at))
            except Exception:
                log.warning("could not store the profiles of %d identities", len(batch), exc_info=True)
                for key in batch:
                    self._seen.pop(key, None)

    def _upsert(self, key: str, profile: Profile, seen_at: datetime) -> sa.Executable:
        fields = dict(zip(PROFILE_FIELDS, profile, strict=True))
        insert = upsert(identities, self.db.backend).values(
            id=key, first_seen_at=seen_at, last_seen_at=seen_at, request_count=0, **fields
        )
        changed = {name: insert.excluded[name] for name, value in fields.items() if value is not None}
        return insert.on_conflict_do_update(index_elements=[identities.c.id], set_=changed)


def _iso(moment: datetime) -> str:
    return (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)).isoformat()
