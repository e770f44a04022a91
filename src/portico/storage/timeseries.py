"""Time series over the call log: metrics per UTC bucket (minute, hour or day) and per group (model, provider,
identity, deployment, status or a metadata key), computed in SQL on SQLite and PostgreSQL.

Buckets: PostgreSQL truncates `created_at` in UTC (`date_trunc`); SQLite cuts the stored text, which is naive
UTC `YYYY-MM-DD HH:MM:SS.ffffff` (the first 16, 13 or 10 characters). Percentiles are nearest-rank, as in
`storage/analytics.py`: `percentile_disc` on PostgreSQL, a window rank per bucket and group on SQLite; a TTFT
percentile ranks the records that have a TTFT (streams). Groups are the `limit` largest by requests in the range;
the rest are folded into one `other` series. Empty buckets are filled: counts and sums 0, rates and percentiles
null. A range reads only its range (`ix_request_logs_created_at`); timings in `bench/analytics_query.py`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, get_args

import sqlalchemy as sa

from portico.storage.analytics import failed, plain_column, utc
from portico.storage.connection import Connection
from portico.storage.db import Database
from portico.storage.tables import request_logs

Grain = Literal["minute", "hour", "day"]
GRAINS: tuple[str, ...] = get_args(Grain)
STEP = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}
_SQLITE_CHARS = {"minute": 16, "hour": 13, "day": 10}  # `YYYY-MM-DD HH:MM`, `YYYY-MM-DD HH`, `YYYY-MM-DD`

_c = request_logs.c
SUMS: dict[str, sa.Column[Any]] = {
    "prompt_tokens": _c.prompt_tokens,
    "completion_tokens": _c.completion_tokens,
    "total_tokens": _c.total_tokens,
    "cached_tokens": _c.cached_tokens,
    "reasoning_tokens": _c.reasoning_tokens,
    "cost_usd": _c.cost_usd,
}
PERCENTILES: dict[str, tuple[str, int]] = {
    f"{name}_p{p}": (column, p)
    for name, column in (("latency", "latency_ms"), ("ttft", "ttft_ms"))
    for p in (50, 90, 99)
}
COUNTED = ("requests", "errors", *SUMS)
"""Counts and sums: 0 in an empty bucket. The rest (rates, percentiles) are null there."""
METRICS: tuple[str, ...] = ("requests", "errors", "error_rate", *SUMS, *PERCENTILES, "cache_hit_rate")
DIMENSIONS = {"model": _c.model, "provider": _c.provider, "identity": _c.identity_id, "status": _c.status}
DEPLOYMENT_KEY = "deployment_key"
"""Where a deployment call's record names its deployment (`pipeline/deployments.py` puts it in the metadata)."""
_METADATA_KEY = re.compile(r"[A-Za-z0-9_\-]{1,128}")
MAX_BUCKETS = 10_000
MAX_LIMIT = 100
MAX_POINTS = 500_000
SCAN_SHARE = 0.2
"""SQLite reads a range holding more of the log's time span than this by a scan, not by the time index."""
"""Buckets × series (the `limit` groups and `other`) one answer may hold."""


class SeriesError(ValueError):
    """A parameter the query cannot run with: `param` names it."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


def parse_metrics(text: str) -> tuple[str, ...]:
    """`requests,latency_p99`: known names, in the order asked, each once."""
    names = tuple(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    unknown = [name for name in names if name not in METRICS]
    if not names or unknown:
        raise SeriesError("metric", f"unknown metric {', '.join(unknown) or repr(text)}; one of {', '.join(METRICS)}")
    return names


def parse_group(text: str | None) -> str | None:
    if text is None:
        return None
    if text in DIMENSIONS or text == "deployment":
        return text
    key = text.removeprefix("metadata.")
    if key != text and _METADATA_KEY.fullmatch(key):
        return text
    raise SeriesError("group_by", f"{', '.join(DIMENSIONS)}, deployment or metadata.<key> (letters, digits, _ or -)")


def buckets(since: datetime, until: datetime, grain: Grain) -> list[datetime]:
    """The bucket starts covering [since, until): the first holds `since` (a partial bucket when it is not on a
    boundary), the last starts before `until`."""
    step, at = STEP[grain], truncate(utc(since), grain)
    count = -(-(utc(until) - at) // step)  # ⌈(until − first start) / step⌉
    return [at + i * step for i in range(count)]


def truncate(moment: datetime, grain: Grain) -> datetime:
    if grain == "day":
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if grain == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(second=0, microsecond=0)


@dataclass(frozen=True, slots=True)
class SeriesQuery:
    """`since` inclusive, `until` exclusive; `group_by` as `parse_group` accepts it."""

    metrics: tuple[str, ...]
    grain: Grain
    since: datetime
    until: datetime
    group_by: str | None = None
    limit: int = 20
    provider: str | None = None
    model: str | None = None
    identity_id: str | None = None

    def check(self) -> list[datetime]:
        """The buckets, or a `SeriesError` for a range this cannot answer."""
        if self.until <= self.since:
            raise SeriesError("to", "must be later than `from`")
        if not 1 <= self.limit <= MAX_LIMIT:
            raise SeriesError("limit", f"must be between 1 and {MAX_LIMIT}")
        span = (utc(self.until) - truncate(utc(self.since), self.grain)) / STEP[self.grain]
        if span > MAX_BUCKETS:
            message = f"the range holds {span:,.0f} {self.grain} buckets, more than {MAX_BUCKETS:,}: narrow it"
            raise SeriesError("grain", message + " or use a coarser grain")
        found = buckets(self.since, self.until, self.grain)
        series = self.limit + 1 if self.group_by else 1
        if len(found) * series > MAX_POINTS:
            raise SeriesError("limit", f"{len(found):,} buckets × {series} series: more than {MAX_POINTS:,} points")
        return found


class TimeSeries:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def series(self, query: SeriesQuery) -> dict[str, Any]:
        """`{series: [{group, points}], other, groups, truncated}`: series by requests, largest first; `other`
        the groups beyond `limit` folded into one (null when none were); `groups` how many the range holds."""
        starts = query.check()
        backend = self.db.backend
        async with self.db.begin() as conn:
            scan = backend == "sqlite" and await _wide(conn, query)
            base = _base(query, backend, scan=scan)
            tops: list[Any] = [None]
            groups = 0
            if query.group_by is not None:
                ranked = (await conn.execute(_top_groups(base, query.limit))).all()
                tops = [row.grp for row in ranked]
                groups = int(ranked[0].groups) if ranked else 0
            folded = groups > query.limit
            rows = (await conn.execute(_statement(query, backend, base, tops if folded else None))).mappings().all()
        by_group: dict[tuple[Any, bool], dict[datetime, Any]] = {}
        for row in rows:
            top = bool(row["top"]) if folded else True
            group = row["grp"] if query.group_by is not None and top else None
            by_group.setdefault((group, top), {})[_bucket_start(row["bucket"])] = row
        if query.group_by is None:
            groups = 1 if by_group else 0
        # A group first seen between the two statements (PostgreSQL reads each at its own start) goes last.
        order = [*tops, *(group for group, top in by_group if top and group not in tops)]
        series = [
            {"group": group, "points": _points(starts, by_group[(group, True)], query.metrics)}
            for group in order
            if (group, True) in by_group
        ]
        other = None
        if (None, False) in by_group:
            other = {"groups": groups - len(series), "points": _points(starts, by_group[(None, False)], query.metrics)}
        return {"series": series, "other": other, "groups": groups, "truncated": folded}


def _bucket_expression(grain: Grain, backend: str) -> sa.ColumnElement[Any]:
    created = request_logs.c.created_at
    if backend == "postgresql":  # the unit inline (one of three words), as a constant
        return sa.func.date_trunc(sa.literal_column(f"'{grain}'"), sa.func.timezone("UTC", created))
    return sa.func.substr(created, 1, _SQLITE_CHARS[grain])


def _group_expression(group_by: str, backend: str) -> sa.ColumnElement[Any]:
    if group_by in DIMENSIONS:
        return plain_column(DIMENSIONS[group_by], backend)
    key = DEPLOYMENT_KEY if group_by == "deployment" else group_by.removeprefix("metadata.")
    value = request_logs.c.metadata[key].as_string()  # json_extract on SQLite, ->> on PostgreSQL
    return sa.cast(value, sa.Text) if backend == "sqlite" else value  # a number as text, as ->> gives it


async def _wide(conn: Connection, query: SeriesQuery) -> bool:
    """SQLite: does the range hold more than `SCAN_SHARE` of the log's time span? Then a scan reads it faster
    than `ix_request_logs_created_at` (measured on 1M records over 30 days: all of them 1.0 s scanned, 5.1 s
    through the index, which fetches each row apart). SQLite keeps no statistics that would tell its planner; the
    log's first and last times are two index lookups, and calls are assumed spread evenly between them."""
    created = request_logs.c.created_at
    first = sa.select(sa.func.min(created)).scalar_subquery()
    last = sa.select(sa.func.max(created)).scalar_subquery()
    oldest, newest = (await conn.execute(sa.select(first, last))).one()
    if oldest is None or newest is None or newest <= oldest:
        return False
    oldest, newest = utc(oldest), utc(newest)
    covered = min(utc(query.until), newest) - max(utc(query.since), oldest)
    return covered / (newest - oldest) > SCAN_SHARE


def _base(query: SeriesQuery, backend: str, *, scan: bool = False) -> sa.Subquery:
    """The range's records (filtered), each with its bucket, its group and the values the metrics add up. `scan`
    (SQLite): `+created_at` keeps the range off the time index."""
    c = request_logs.c
    created: sa.ColumnElement[Any] = c.created_at
    if scan:
        created = sa.literal_column(f"+{request_logs.name}.{c.created_at.name}", type_=c.created_at.type)
    clauses = [created >= utc(query.since), created < utc(query.until)]
    for column, value in ((c.provider, query.provider), (c.model, query.model), (c.identity_id, query.identity_id)):
        if value is not None:
            clauses.append(column == value)
    group = _group_expression(query.group_by, backend) if query.group_by is not None else sa.null()
    return (
        sa.select(
            _bucket_expression(query.grain, backend).label("bucket"),
            group.label("grp"),
            sa.case((failed(), 1), else_=0).label("failed"),
            sa.case((c.cache_status == "HIT", 1), else_=0).label("hit"),
            c.cache_status,
            c.latency_ms,
            c.ttft_ms,
            *SUMS.values(),
        )
        .where(*clauses)
        .subquery("base")
    )


def _top_groups(base: sa.Subquery, limit: int) -> sa.Select[Any]:
    """The `limit` groups with the most requests (ties by group), and how many groups there are."""
    requests = sa.func.count()
    return (
        sa.select(base.c.grp, requests.label("n"), sa.func.count().over().label("groups"))
        .group_by(base.c.grp)
        .order_by(requests.desc(), base.c.grp.is_(None), base.c.grp)
        .limit(limit)
    )


def _statement(query: SeriesQuery, backend: str, base: sa.Subquery, tops: list[Any] | None) -> sa.Select[Any]:
    """One row per bucket and group (and `top`: 0 for the folded rest, when `tops` names the groups kept)."""
    source = base
    if tops is not None:
        kept = [group for group in tops if group is not None]
        top = sa.or_(base.c.grp.in_(kept), base.c.grp.is_(None)) if None in tops else base.c.grp.in_(kept)
        values = [column for column in base.c if column.name != "grp"]
        flag = sa.case((top, 1), else_=0)
        source = sa.select(*values, sa.case((top, base.c.grp)).label("grp"), flag.label("top")).subquery("folded")
    keys: list[sa.ColumnElement[Any]] = [source.c.bucket, source.c.grp]
    if tops is not None:
        keys.append(source.c.top)
    percentiles = [name for name in query.metrics if name in PERCENTILES]
    ranks: dict[str, sa.ColumnElement[Any]] = {}
    if percentiles and backend == "sqlite":
        source, ranks = _ranked(source, keys, percentiles)
        keys = [source.c[name] for name in ("bucket", "grp", "top")[: len(keys)]]
    s = source.c
    columns: list[sa.ColumnElement[Any]] = [
        *keys,
        sa.func.count().label("requests"),
        sa.func.sum(s.failed).label("errors"),
        sa.func.sum(s.hit).label("hits"),
        sa.func.count(s.cache_status).label("lookups"),
        *(sa.func.coalesce(sa.func.sum(s[name]), 0).label(name) for name in SUMS),
    ]
    for name in percentiles:
        column, p = PERCENTILES[name]
        if backend == "postgresql":
            columns.append(sa.func.percentile_disc(p / 100).within_group(s[column]).label(name))
        else:
            columns.append(sa.func.max(sa.case((ranks[name], s[column]))).label(name))
    return sa.select(*columns).group_by(*keys)


def _ranked(
    source: sa.Subquery, keys: list[sa.ColumnElement[Any]], percentiles: list[str]
) -> tuple[sa.Subquery, dict[str, sa.ColumnElement[Any]]]:
    """SQLite: each record's rank by latency and by TTFT in its bucket and group, and the group's size (records
    with a TTFT for the TTFT ranks: those without one rank in a partition of their own). Returns the ranked
    records and, per percentile, the condition that holds on the record at rank ⌈p·n⌉."""
    s = source.c
    windows: list[sa.ColumnElement[Any]] = []
    for column in sorted({PERCENTILES[name][0] for name in percentiles}):
        value = s[column]
        windows.append(
            sa.func.row_number().over(partition_by=[*keys, value.is_(None)], order_by=value).label(f"rn_{column}")
        )
        windows.append(sa.func.count(value).over(partition_by=keys).label(f"n_{column}"))
    ranked = sa.select(source, *windows).subquery("ranked")
    r = ranked.c
    ranks: dict[str, sa.ColumnElement[Any]] = {}
    for name in percentiles:
        column, p = PERCENTILES[name]
        n = r[f"n_{column}"]
        ranks[name] = sa.and_(r[column].is_not(None), r[f"rn_{column}"] == (n * p + 99) // 100)  # ⌈p·n/100⌉
    return ranked, ranks


def _bucket_start(value: Any) -> datetime:
    """PostgreSQL answers a naive UTC timestamp, SQLite the text cut from the stored one."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _points(starts: list[datetime], rows: dict[datetime, Any], metrics: tuple[str, ...]) -> list[dict[str, Any]]:
    return [_point(start, rows.get(start), metrics) for start in starts]


def _point(start: datetime, row: Any, metrics: tuple[str, ...]) -> dict[str, Any]:
    point: dict[str, Any] = {"t": start.isoformat()}
    for name in metrics:
        if row is None:
            point[name] = (0.0 if name == "cost_usd" else 0) if name in COUNTED else None
        elif name == "error_rate":
            point[name] = int(row["errors"]) / int(row["requests"])
        elif name == "cache_hit_rate":
            lookups = int(row["lookups"])
            point[name] = int(row["hits"]) / lookups if lookups else None
        elif name == "cost_usd":
            point[name] = float(row[name])
        elif name in COUNTED:
            point[name] = int(row[name])
        else:
            point[name] = float(row[name]) if row[name] is not None else None
    return point
