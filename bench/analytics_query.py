"""Time `/v1/analytics/usage`'s and `/v1/analytics/timeseries`' SQL on a call log of N records (default
1,000,000), on SQLite or PostgreSQL.

    .venv/bin/python bench/analytics_query.py [sqlite:///tmp/a.db | postgresql://postgres@127.0.0.1/test?schema=x] [N]

Records are spread over 30 days, 20 models, 5 providers, 1,000 identities and 50 keys, half of them streams with a
TTFT; each query runs twice and the better time is printed: every usage grouping over all records and over one
day, with percentiles too; then time series at hour grain over one day and over the 30 days, by model, with and
without percentiles, and a few other shapes (minute grain, many groups folded into `other`, a metadata key).
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from portico.core.ids import time_ordered_id
from portico.core.records import CallRecord
from portico.storage.analytics import GROUPS, UsageAnalytics, UsageQuery
from portico.storage.db import Database
from portico.storage.tables import request_logs
from portico.storage.timeseries import SeriesQuery, TimeSeries

START = datetime(2026, 11, 1, tzinfo=UTC)


def record(rng: random.Random) -> dict[str, object]:
    model = f"model-{rng.randrange(20)}"
    failed = rng.random() < 0.03
    hit = not failed and rng.random() < 0.1
    stream = rng.random() < 0.5
    return CallRecord(
        id=time_ordered_id(),
        created_at=START + timedelta(seconds=rng.randrange(30 * 86400)),
        request_id=time_ordered_id(),
        path="/v1/chat/completions",
        dialect="openai",
        status=502 if failed else 200,
        client_key_hash=f"{rng.randrange(50):016x}",
        provider=f"prov-{rng.randrange(5)}",
        model=model,
        error_type="upstream_error" if failed else None,
        cache_status="HIT" if hit else "MISS",
        prompt_tokens=rng.randrange(2000),
        completion_tokens=rng.randrange(500),
        total_tokens=0,
        cost_usd=None if model == "model-0" else rng.random() / 100,
        latency_ms=rng.random() * 2000,
        stream=stream,
        ttft_ms=rng.random() * 500 if stream else None,
        metadata={"cost_saved_usd": 0.001} if hit else {},
        identity_id=f"user-{rng.randrange(1000)}",
    )._asdict()


async def main(url: str, count: int) -> None:
    db = Database(url)
    await db.migrate()
    rng = random.Random(7)
    async with db.begin() as conn:
        have = (await conn.execute(sa.select(sa.func.count()).select_from(request_logs))).scalar_one()
    for start in range(have, count, 20_000):
        rows = [record(rng) for _ in range(min(20_000, count - start))]
        async with db.begin() as conn:
            await conn.execute(request_logs.insert(), rows)
    analytics = UsageAnalytics(db)
    day = (START + timedelta(days=10), START + timedelta(days=11))
    cases = [(g, "all", None, None, False) for g in GROUPS] + [(g, "one day", *day, False) for g in GROUPS]
    cases += [("model", "one day", *day, True), ("model", "all", None, None, True)]
    for group, label, since, until, percentiles in cases:
        best = float("inf")
        for _ in range(2):
            began = time.perf_counter()
            rows = await analytics.usage(UsageQuery(group, since, until, None, percentiles))  # type: ignore[arg-type]
            best = min(best, time.perf_counter() - began)
        what = f"group_by={group:8} {label:8}{' +percentiles' if percentiles else ''}"
        print(f"{db.backend:10} {count:>9,} records  {what:40} {len(rows):5} rows  {best:7.3f} s", flush=True)
    await time_series(db, count, day)
    await db.close()


SUMMED = ("requests", "errors", "error_rate", "total_tokens", "cost_usd", "cache_hit_rate")
RANKED = (*SUMMED, "latency_p50", "latency_p90", "latency_p99", "ttft_p50", "ttft_p90", "ttft_p99")


async def time_series(db: Database, count: int, day: tuple[datetime, datetime]) -> None:
    series = TimeSeries(db)
    month = (START, START + timedelta(days=30))
    cases = [
        ("hour", "one day", day, "model", SUMMED),
        ("hour", "one day", day, "model", RANKED),
        ("hour", "30 days", month, "model", SUMMED),
        ("hour", "30 days", month, "model", RANKED),
        ("minute", "one day", day, None, RANKED),
        ("day", "30 days", month, None, RANKED),
        ("hour", "one day", day, "identity", SUMMED),  # 1,000 groups: 20 kept, the rest folded into `other`
        ("hour", "30 days", month, "identity", SUMMED),
        ("hour", "one day", day, "metadata.cost_saved_usd", SUMMED),  # JSON read per record
    ]
    for grain, label, (since, until), group_by, metrics in cases:
        best = float("inf")
        for _ in range(2):
            began = time.perf_counter()
            answer = await series.series(SeriesQuery(metrics, grain, since, until, group_by))  # type: ignore[arg-type]
            best = min(best, time.perf_counter() - began)
        points = sum(len(s["points"]) for s in answer["series"])
        what = f"timeseries {grain:6} {label:8} by {group_by or '-':10}{' +percentiles' if metrics is RANKED else ''}"
        print(f"{db.backend:10} {count:>9,} records  {what:58} {points:6} points  {best:7.3f} s", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000))
