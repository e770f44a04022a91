"""`GET /v1/analytics/timeseries` as an operator uses it, on SQLite and on PostgreSQL. The call log holds real calls
(router calls, a stream with a TTFT, a failure, a cache hit, deployment invocations) and older records spread over
three days; every metric of every bucket and group equals what the raw records listed by `/v1/logs` add up to,
computed here in Python, at each grain. Bad parameters are 422s naming them; an empty range has no series."""

from __future__ import annotations

import math
import random
import urllib.parse
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import openai
import pytest

from portico.core.records import CallRecord
from portico.storage.db import Database
from portico.storage.tables import request_logs
from tests.conftest import KEY, Stack
from tests.deployments.conftest import create, new_key, simple
from tests.gateway_server import GatewayThread
from tests.storage.conftest import drop_schema, postgres_url
from tests.storage.test_call_log_e2e import logged_settings, wait_for_record
from tests.upstreams.server import UpstreamThread

SEEDED_FROM = datetime(2026, 1, 1, tzinfo=UTC)
SEEDED_TO = SEEDED_FROM + timedelta(days=3)
METRICS = (
    "requests",
    "errors",
    "error_rate",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "cost_usd",
    "latency_p50",
    "latency_p90",
    "latency_p99",
    "ttft_p50",
    "ttft_p90",
    "ttft_p99",
    "cache_hit_rate",
)
STEP = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}
GroupOf = Callable[[dict[str, Any]], Any]
GROUPS: dict[str, GroupOf] = {
    "model": lambda r: r["model"],
    "provider": lambda r: r["provider"],
    "identity": lambda r: r["identity_id"],
    "status": lambda r: r["status"],
    "deployment": lambda r: r["metadata"].get("deployment_key"),
    "metadata.team": lambda r: r["metadata"].get("team"),
}


@pytest.fixture(params=["sqlite", "postgresql"])
async def storage_url(request: pytest.FixtureRequest, tmp_path: Any) -> AsyncIterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'portico.db'}"
        await _seed(url)
        yield url
        return
    server = await postgres_url()  # skips, saying why, when PostgreSQL does not answer
    schema = f"portico_test_{uuid.uuid4().hex[:12]}"
    await _seed(f"{server}?schema={schema}")
    yield f"{server}?schema={schema}"
    await drop_schema(server, schema)


async def _seed(url: str) -> None:
    """Older records, straight into the call log: 3 days, 4 models, 3 teams, errors, hits, TTFTs; a cluster of
    them within one hour, so that minutes hold several."""
    rng = random.Random(19)
    rows = []
    for n in range(160):
        if n < 40:
            at = SEEDED_FROM + timedelta(hours=13, seconds=rng.randrange(1800))
        else:
            at = SEEDED_FROM + timedelta(seconds=rng.randrange(3 * 86400), microseconds=rng.randrange(10**6))
        failed = rng.random() < 0.15
        model = rng.choice(["alpha", "beta", "gamma", "delta"])
        stream = rng.random() < 0.5
        metadata: dict[str, Any] = {"team": rng.choice(["north", "south", "west"])}
        if rng.random() < 0.3:
            metadata["deployment_key"] = rng.choice(["dep-one", "dep-two"])
        prompt, completion = rng.randrange(1, 500), rng.randrange(0, 200)
        record = CallRecord(
            id=uuid.uuid4().hex,
            created_at=at,
            request_id=f"seed-{n}",
            path="/v1/chat/completions",
            dialect="openai",
            status=rng.choice([500, 502, 429]) if failed else 200,
            provider=rng.choice(["openai", "groq", None]) if not failed else "openai",
            model=model,
            error_type="upstream_error" if failed else None,
            stream=stream,
            cache_status=rng.choice([None, "HIT", "MISS", "MISS"]),
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=prompt + completion,
            cached_tokens=rng.randrange(0, prompt),
            reasoning_tokens=rng.randrange(0, 50),
            cost_usd=None if model == "delta" else rng.random() / 100,
            latency_ms=round(rng.random() * 3000, 3),
            ttft_ms=round(rng.random() * 500, 3) if stream else None,
            metadata=metadata,
            identity_id=rng.choice(["ann", "ben", "cat", "dan", "eve", None]),
        )
        rows.append(record._asdict())
    db = Database(url)
    try:
        await db.migrate()
        async with db.begin() as conn:
            await conn.execute(request_logs.insert(), rows)
    finally:
        await db.close()


@pytest.fixture
def served(storage_url: str, upstream_thread: UpstreamThread) -> Iterator[Stack]:
    """A gateway that served a mix of live calls on top of the seeded records, all recorded before a test reads."""
    upstream_thread.state.reset()
    with GatewayThread(logged_settings(upstream_thread.url, storage_url)) as gateway:
        stack = Stack(gateway, upstream_thread)
        ids = [
            *(_call(stack, "openai/gpt-4o", "alice", {"team": "north"}) for _ in range(3)),
            _call(stack, "openai/gpt-4o", "bob", {"team": "south"}, stream=True),
            _call(stack, "openai/gpt-4o-mini", "bob", {"team": "south"}, stream=True),
            _call(stack, "deadprov/gpt-4o", "carol", {}, expect=502),
        ]
        cached = {"model": "openai/gpt-4o", "messages": _ask(), "cache": {"type": "exact_match", "ttl": 60}}
        for _ in range(2):  # a miss, then a hit
            response = stack.post("/v2/router/chat/completions", cached)
            assert response.status == 200, response.body
            ids.append(response.headers["x-request-id"])
        key = new_key("series")
        create(stack, simple(key))
        for _ in range(2):
            answer = stack.post("/v2/deployments/invoke", {"key": key, "messages": [{"role": "user", "content": "hi"}]})
            assert answer.status == 200, answer.body
            ids.append(answer.headers["x-request-id"])
        for request_id in ids:
            wait_for_record(stack, request_id)
        yield stack
    upstream_thread.state.reset()


def _ask() -> list[Any]:
    return [{"role": "user", "content": f"series {uuid.uuid4().hex}"}]


def _call(
    stack: Stack, model: str, identity: str, metadata: dict[str, str], *, stream: bool = False, expect: int = 200
) -> str:
    client = openai.OpenAI(base_url=stack.gateway.url + "/v1", api_key=KEY, max_retries=0)
    body = {"identity": {"id": identity}, "metadata": metadata}
    try:
        if stream:
            with client.chat.completions.with_streaming_response.create(
                model=model, messages=_ask(), stream=True, stream_options={"include_usage": True}, extra_body=body
            ) as response:
                for _ in response.iter_lines():
                    pass
                return str(response.headers["x-request-id"])
        raw = client.chat.completions.with_raw_response.create(model=model, messages=_ask(), extra_body=body)
    except openai.APIStatusError as failed:
        assert failed.status_code >= 500 and expect >= 500
        return str(failed.response.headers["x-request-id"])
    assert expect == 200
    return str(raw.headers["x-request-id"])


def _records(stack: Stack) -> list[dict[str, Any]]:
    response = stack.get("/v1/logs?limit=1000")
    assert response.status == 200, response.body
    data: list[dict[str, Any]] = response.json()["data"]
    assert response.json()["total"] == len(data)
    for record in data:
        record["at"] = datetime.fromisoformat(record["created_at"]).astimezone(UTC)
    return data


def _series(stack: Stack, **query: Any) -> dict[str, Any]:
    response = stack.get("/v1/analytics/timeseries?" + urllib.parse.urlencode(query))
    assert response.status == 200, response.body
    answer: dict[str, Any] = response.json()
    return answer


# What the answer must be, from the raw records alone.


def _nearest_rank(values: list[float], p: int) -> float | None:
    ordered = sorted(values)
    return ordered[math.ceil(p / 100 * len(ordered)) - 1] if ordered else None


def _metrics(members: list[dict[str, Any]]) -> dict[str, Any]:
    if not members:
        return {m: (0 if m in ("requests", "errors") or "tokens" in m or m == "cost_usd" else None) for m in METRICS}
    errors = sum(1 for r in members if r["status"] >= 400 or r["error_type"] is not None)
    lookups = [r for r in members if r["cache_status"] is not None]
    latencies = [r["latency_ms"] for r in members]
    ttfts = [r["ttft_ms"] for r in members if r["ttft_ms"] is not None]
    out: dict[str, Any] = {"requests": len(members), "errors": errors, "error_rate": errors / len(members)}
    for name in ("prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens", "reasoning_tokens"):
        out[name] = sum(r[name] for r in members)
    out["cost_usd"] = sum(r["cost_usd"] for r in members if r["cost_usd"] is not None)
    for p in (50, 90, 99):
        out[f"latency_p{p}"] = _nearest_rank(latencies, p)
        out[f"ttft_p{p}"] = _nearest_rank(ttfts, p)
    hits = sum(1 for r in lookups if r["cache_status"] == "HIT")
    out["cache_hit_rate"] = hits / len(lookups) if lookups else None
    return out


def _truncate(at: datetime, grain: str) -> datetime:
    if grain == "day":
        return at.replace(hour=0, minute=0, second=0, microsecond=0)
    if grain == "hour":
        return at.replace(minute=0, second=0, microsecond=0)
    return at.replace(second=0, microsecond=0)


def _expected(
    records: list[dict[str, Any]], grain: str, since: datetime, until: datetime, group_of: GroupOf | None, limit: int
) -> dict[str, Any]:
    inside = [r for r in records if since <= r["at"] < until]
    starts, at = [], _truncate(since, grain)
    while at < until:
        starts.append(at)
        at += STEP[grain]

    def points(members: list[dict[str, Any]]) -> list[dict[str, Any]]:
        by_bucket: dict[datetime, list[dict[str, Any]]] = defaultdict(list)
        for r in members:
            by_bucket[_truncate(r["at"], grain)].append(r)
        return [{"t": start.isoformat(), **_metrics(by_bucket.get(start, []))} for start in starts]

    if group_of is None:
        return {"series": [{"group": None, "points": points(inside)}] if inside else [], "other": None}
    counts = Counter(group_of(r) for r in inside)
    ranked = sorted(counts, key=lambda g: (-counts[g], g is None, "" if g is None else g))
    kept, rest = ranked[:limit], set(ranked[limit:])
    series = [{"group": g, "points": points([r for r in inside if group_of(r) == g])} for g in kept]
    other = None
    if rest:
        other = {"groups": len(rest), "points": points([r for r in inside if group_of(r) in rest])}
    return {"series": series, "other": other, "groups": len(counts), "truncated": bool(rest)}


def _assert_points(got: list[dict[str, Any]], want: list[dict[str, Any]], where: Any) -> None:
    assert [p["t"] for p in got] == [p["t"] for p in want], where
    for g, w in zip(got, want, strict=True):
        for name, value in w.items():
            if isinstance(value, float):
                assert g[name] == pytest.approx(value, rel=1e-9, abs=1e-12), (where, g["t"], name)
            else:
                assert g[name] == value, (where, g["t"], name, g)


def _assert_answer(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert [s["group"] for s in got["series"]] == [s["group"] for s in want["series"]]
    for g, w in zip(got["series"], want["series"], strict=True):
        _assert_points(g["points"], w["points"], w["group"])
    if want["other"] is None:
        assert got["other"] is None
    else:
        assert got["other"]["groups"] == want["other"]["groups"]
        _assert_points(got["other"]["points"], want["other"]["points"], "other")
    for field in ("groups", "truncated"):
        if field in want:
            assert got[field] == want[field], field


def _check(stack: Stack, records: list[dict[str, Any]], grain: str, since: datetime, until: datetime, **q: Any) -> None:
    group_by, limit = q.get("group_by"), q.get("limit", 20)
    got = _series(
        stack, metric=",".join(METRICS), grain=grain, **{"from": since.isoformat(), "to": until.isoformat()}, **q
    )
    assert (got["grain"], got["metrics"]) == (grain, list(METRICS))
    assert datetime.fromisoformat(got["from"]) == since and datetime.fromisoformat(got["to"]) == until
    group_of = GROUPS[group_by] if group_by else None
    _assert_answer(got, _expected(records, grain, since, until, group_of, limit))


def _live_window(records: list[dict[str, Any]]) -> tuple[datetime, datetime]:
    live = [r["at"] for r in records if not r["request_id"].startswith("seed-")]
    return _truncate(min(live), "hour") - timedelta(hours=1), max(live) + timedelta(hours=1)


# The tests.


def test_every_metric_at_every_grain_equals_the_raw_records(served: Stack) -> None:
    records = _records(served)
    assert len(records) == 160 + 10
    cluster = (SEEDED_FROM + timedelta(hours=12, minutes=50), SEEDED_FROM + timedelta(hours=14, minutes=5))
    live = _live_window(records)
    ranges = {"day": [(SEEDED_FROM, SEEDED_TO)], "hour": [(SEEDED_FROM, SEEDED_TO), live], "minute": [cluster, live]}
    for grain, windows in ranges.items():
        for since, until in windows:
            for group_by in (None, "model", "metadata.team"):
                _check(served, records, grain, since, until, **({"group_by": group_by} if group_by else {}))


def test_each_dimension_groups_like_the_raw_records(served: Stack) -> None:
    records = _records(served)
    since, until = SEEDED_FROM, _live_window(records)[1]  # the seeded days and the live calls: 1,000+ days
    for group_by in GROUPS:
        _check(served, records, "day", since, until, group_by=group_by)
        _check(served, records, "hour", *_live_window(records), group_by=group_by)
    deployments = _series(
        served, metric="requests", grain="day", group_by="deployment", **_range(*_live_window(records))
    )
    named = [s["group"] for s in deployments["series"] if s["group"] is not None]
    assert len(named) == 1 and named[0].startswith("series-")
    assert sum(p["requests"] for s in deployments["series"] if s["group"] for p in s["points"]) == 2


def test_groups_beyond_the_limit_fold_into_other(served: Stack) -> None:
    records = _records(served)
    for group_by in ("identity", "model"):
        _check(served, records, "day", SEEDED_FROM, SEEDED_TO, group_by=group_by, limit=2)
    answer = _series(
        served, metric="requests", grain="day", group_by="identity", limit=2, **_range(SEEDED_FROM, SEEDED_TO)
    )
    assert answer["truncated"] and len(answer["series"]) == 2 and answer["other"]["groups"] == answer["groups"] - 2
    seeded = sum(1 for r in records if r["request_id"].startswith("seed-"))
    total = sum(p["requests"] for s in [*answer["series"], answer["other"]] for p in s["points"])
    assert total == seeded


def test_filters_keep_only_their_records(served: Stack) -> None:
    records = _records(served)
    since, until = SEEDED_FROM, _live_window(records)[1]
    filters = {"provider": "openai", "model": "gpt-4o", "identity_id": "bob"}
    for name, value in filters.items():
        kept = [r for r in records if r[name] == value]
        assert kept
        _check(served, kept, "day", since, until, group_by="model", **{name: value})


def test_a_range_without_records_has_no_series(served: Stack) -> None:
    empty = _range(SEEDED_FROM - timedelta(days=30), SEEDED_FROM - timedelta(days=29))
    for group_by in ({}, {"group_by": "model"}, {"group_by": "metadata.team"}):
        answer = _series(served, metric="requests,latency_p99", grain="hour", **empty, **group_by)
        assert answer["series"] == [] and answer["other"] is None and answer["groups"] == 0


def test_the_default_range_is_the_last_24_hours(served: Stack) -> None:
    answer = _series(served, metric="requests")
    assert answer["grain"] == "hour"
    since, until = datetime.fromisoformat(answer["from"]), datetime.fromisoformat(answer["to"])
    assert until - since == timedelta(hours=24) and abs(datetime.now(UTC) - until) < timedelta(minutes=1)
    [series] = answer["series"]
    assert len(series["points"]) in (24, 25)  # a partial first hour unless `from` falls on one
    assert sum(p["requests"] for p in series["points"]) == 10
    assert all(p["requests"] == 0 for p in series["points"][:-2])  # every bucket, filled with 0


def _range(since: datetime, until: datetime) -> dict[str, str]:
    return {"from": since.isoformat(), "to": until.isoformat()}


BAD_QUERIES = (
    ("", "metric"),
    ("metric=", "metric"),
    ("metric=requests,colour", "metric"),
    ("metric=requests&grain=week", "grain"),
    ("metric=requests&group_by=colour", "group_by"),
    ("metric=requests&group_by=metadata.", "group_by"),
    ("metric=requests&group_by=metadata.a%20b", "group_by"),
    ("metric=requests&from=yesterday", "from"),
    ("metric=requests&to=2026-13-01", "to"),
    ("metric=requests&from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", "to"),
    ("metric=requests&from=2026-01-01T00:00:00Z&to=2026-01-01T00:00:00Z", "to"),
    ("metric=requests&grain=minute&from=2026-01-01T00:00:00Z&to=2026-01-31T00:00:00Z", "grain"),
    ("metric=requests&grain=hour&from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z", "grain"),
    ("metric=requests&limit=0", "limit"),
    ("metric=requests&limit=101", "limit"),
    ("metric=requests&limit=ten", "limit"),
    (
        "metric=requests&group_by=model&limit=100&grain=minute&from=2026-01-01T00:00:00Z&to=2026-01-07T00:00:00Z",
        "limit",
    ),
)


def test_bad_parameters_are_422s_naming_the_parameter(served: Stack) -> None:
    for query, param in BAD_QUERIES:
        response = served.get("/v1/analytics/timeseries?" + query)
        assert response.status == 422, (query, response.body)
        error = response.json()["error"]
        assert error["param"] == param or param in error["message"], (query, error)


def test_the_time_series_needs_a_gateway_key(served: Stack) -> None:
    response = served.get("/v1/analytics/timeseries?metric=requests", key=None)
    assert response.status == 401 and response.json()["error"]["type"]
