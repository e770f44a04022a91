"""Reads over the call log by who asked and in which conversation: identities with their totals, and a thread's
requests oldest first. Totals are summed from the records themselves, so they always agree with `/v1/logs`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from portico.core.records import CallRecord, LogFilter
from portico.storage.db import Database
from portico.storage.repos import RequestLogRepo
from portico.storage.tables import identities, request_logs

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
    }


def _iso(moment: datetime) -> str:
    return (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)).isoformat()
