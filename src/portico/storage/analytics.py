"""Usage analytics over the call log: one row per group (model, provider, UTC day, identity or client key) with
its requests, errors, tokens, cost, cache hits, what the hits saved and latency percentiles.

Everything is computed in one SQL statement on either backend, so the sums are the raw records' sums by
construction. Latency percentiles are asked for (`percentiles`): they sort the range, which a plain GROUP BY
does not. They are nearest-rank (the value at rank ⌈p·n⌉ of the group's latencies, ordered) on both
backends, so they answer alike: PostgreSQL's `percentile_disc` is that by definition; SQLite has no percentile
function, so there a window function ranks each group's latencies. A time range reads only its range (an index on
`created_at`), as does an identity's (migration 0009); a whole-log GROUP BY is a scan.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, get_args

import sqlalchemy as sa

from portico.storage.db import Database
from portico.storage.tables import request_logs

GroupBy = Literal["model", "provider", "day", "identity", "key"]
GROUPS: tuple[str, ...] = get_args(GroupBy)

_COLUMN_OF = {
    "model": request_logs.c.model,
    "provider": request_logs.c.provider,
    "identity": request_logs.c.identity_id,
    "key": request_logs.c.client_key_hash,
}


@dataclass(frozen=True, slots=True)
class UsageQuery:
    """`since` inclusive, `until` exclusive (UTC); `identity_id` keeps one identity's calls."""

    group_by: GroupBy
    since: datetime | None = None
    until: datetime | None = None
    identity_id: str | None = None
    percentiles: bool = False
    """Latency p50/p95 too: a sort of every record in range (measured in `bench/analytics_query.py`)."""


class UsageAnalytics:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def usage(self, query: UsageQuery) -> list[dict[str, Any]]:
        """Rows ordered by group (days ascending; a null group, e.g. calls no provider served, last)."""
        statement = _statement(query, self.db.backend)
        async with self.db.begin() as conn:
            rows = (await conn.execute(statement)).mappings().all()
        return [_row(row) for row in rows]


def _group_expression(group_by: GroupBy, backend: str) -> sa.ColumnElement[Any]:
    if group_by != "day":
        return plain_column(_COLUMN_OF[group_by], backend)
    created = request_logs.c.created_at
    if backend == "postgresql":
        return sa.func.to_char(sa.func.timezone("UTC", created), "YYYY-MM-DD")
    # SQLite stores SQLAlchemy's text format for DateTime, naive UTC: `YYYY-MM-DD HH:MM:SS.ffffff`
    return sa.func.substr(created, 1, 10)


def plain_column(column: sa.Column[Any], backend: str) -> sa.ColumnElement[Any]:
    """A call-log column to group by. On SQLite `+column`: it would walk an index on it row by row (24 s for 1M
    records, 5 s without)."""
    if backend == "sqlite":
        return sa.literal_column(f"+{request_logs.name}.{column.name}")
    return column


def failed() -> sa.ColumnElement[bool]:
    """A call that failed: an error status, or an error after a 200 (a stream cut short)."""
    c = request_logs.c
    return sa.or_(c.status >= 400, c.error_type.is_not(None))


def _statement(query: UsageQuery, backend: str) -> sa.Select[Any]:
    c = request_logs.c
    clauses: list[sa.ColumnElement[bool]] = []
    if query.since is not None:
        clauses.append(c.created_at >= utc(query.since))
    if query.until is not None:
        clauses.append(c.created_at < utc(query.until))
    if query.identity_id is not None:
        clauses.append(c.identity_id == query.identity_id)
    if not query.percentiles or backend == "postgresql":
        return _plain(query.group_by, backend, clauses, percentiles=query.percentiles)
    ranked = _partitioned(query.group_by, backend, clauses)
    r = ranked.c
    n = r.n  # the group's size, from the window: an aggregate cannot sit inside another
    rank50 = (n + 1) // 2  # ⌈n/2⌉ in integer arithmetic
    rank95 = (n * 95 + 99) // 100  # ⌈0.95·n⌉
    return (
        sa.select(
            r.grp.label("group"),
            sa.func.count().label("requests"),
            sa.func.sum(r.failed).label("errors"),
            sa.func.coalesce(sa.func.sum(r.prompt_tokens), 0).label("prompt_tokens"),
            sa.func.coalesce(sa.func.sum(r.completion_tokens), 0).label("completion_tokens"),
            sa.func.coalesce(sa.func.sum(r.total_tokens), 0).label("total_tokens"),
            sa.func.sum(r.cost_usd).label("cost_usd"),
            sa.func.count(r.cost_usd).label("priced_requests"),
            sa.func.sum(r.hit).label("cache_hits"),
            sa.func.sum(r.saved).label("saved_usd"),
            sa.func.max(sa.case((r.rn == rank50, r.latency_ms))).label("p50_latency_ms"),
            sa.func.max(sa.case((r.rn == rank95, r.latency_ms))).label("p95_latency_ms"),
        )
        .group_by(r.grp)
        .order_by(r.grp.is_(None), r.grp)
    )


def _plain(
    group_by: GroupBy, backend: str, clauses: list[sa.ColumnElement[bool]], *, percentiles: bool = False
) -> sa.Select[Any]:
    """One GROUP BY over the range: the JSON of a record's metadata is read only for cache hits. PostgreSQL's
    percentiles are `percentile_disc`, the nearest rank by definition (the first value whose cumulative share
    reaches p), sorted per group: the window form took longer than the statement deadline on 1M records."""
    c = request_logs.c
    group = _group_expression(group_by, backend).label("group")
    hit = c.cache_status == "HIT"
    p50: sa.ColumnElement[Any]
    p95: sa.ColumnElement[Any]
    if percentiles:
        p50 = sa.func.percentile_disc(0.5).within_group(c.latency_ms)
        p95 = sa.func.percentile_disc(0.95).within_group(c.latency_ms)
    else:
        p50 = p95 = sa.null()
    return (
        sa.select(
            group,
            sa.func.count().label("requests"),
            sa.func.sum(sa.case((failed(), 1), else_=0)).label("errors"),
            sa.func.coalesce(sa.func.sum(c.prompt_tokens), 0).label("prompt_tokens"),
            sa.func.coalesce(sa.func.sum(c.completion_tokens), 0).label("completion_tokens"),
            sa.func.coalesce(sa.func.sum(c.total_tokens), 0).label("total_tokens"),
            sa.func.sum(c.cost_usd).label("cost_usd"),
            sa.func.count(c.cost_usd).label("priced_requests"),
            sa.func.sum(sa.case((hit, 1), else_=0)).label("cache_hits"),
            sa.func.sum(sa.case((hit, c.metadata["cost_saved_usd"].as_float()))).label("saved_usd"),
            p50.label("p50_latency_ms"),
            p95.label("p95_latency_ms"),
        )
        .where(*clauses)
        .group_by(group)
        .order_by(group.is_(None), group)
    )


def _partitioned(group_by: GroupBy, backend: str, clauses: list[sa.ColumnElement[bool]]) -> sa.Subquery:
    """The filtered records, each with its group, its error and hit flags and its latency rank in the group.
    The window partitions by the group expression itself: PostgreSQL cannot partition by an output alias."""
    c = request_logs.c
    group = _group_expression(group_by, backend)
    return (
        sa.select(
            group.label("grp"),
            sa.case((failed(), 1), else_=0).label("failed"),
            c.prompt_tokens,
            c.completion_tokens,
            c.total_tokens,
            c.cost_usd,
            sa.case((c.cache_status == "HIT", 1), else_=0).label("hit"),
            sa.case((c.cache_status == "HIT", c.metadata["cost_saved_usd"].as_float())).label("saved"),
            c.latency_ms,
            sa.func.row_number().over(partition_by=group, order_by=c.latency_ms).label("rn"),
            sa.func.count().over(partition_by=group).label("n"),
        )
        .where(*clauses)
        .subquery("ranked")
    )


def _row(row: Any) -> dict[str, Any]:
    """`cost_usd` sums the priced requests (`priced_requests` of them); `saved_usd` what cache hits saved, where
    the saved answer had a price. Both null when nothing in the group had one."""
    return {
        "group": row["group"],
        "requests": int(row["requests"]),
        "errors": int(row["errors"] or 0),
        "prompt_tokens": int(row["prompt_tokens"]),
        "completion_tokens": int(row["completion_tokens"]),
        "total_tokens": int(row["total_tokens"]),
        "cost_usd": float(row["cost_usd"]) if row["cost_usd"] is not None else None,
        "priced_requests": int(row["priced_requests"]),
        "cache_hits": int(row["cache_hits"] or 0),
        "saved_usd": float(row["saved_usd"]) if row["saved_usd"] is not None else None,
        "p50_latency_ms": float(row["p50_latency_ms"]) if row["p50_latency_ms"] is not None else None,
        "p95_latency_ms": float(row["p95_latency_ms"]) if row["p95_latency_ms"] is not None else None,
    }


def utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
