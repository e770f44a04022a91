"""GET /v1/analytics/usage: what the gateway served, summed per model, provider, UTC day, identity or client key,
over a time range; GET /v1/analytics/timeseries: metrics per UTC minute, hour or day, per group. For holders of a
gateway key, like `/v1/logs`. Computed in SQL over the call log (`storage/analytics.py`, `storage/timeseries.py`),
so they always equal the records `/v1/logs` lists for the same filter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, FastAPI, Query, Response
from fastapi.responses import JSONResponse

from portico.core.errors import FieldError, ValidationFailed
from portico.http.admin_deps import error_responses, require_gateway_key
from portico.http.auth import Authenticator
from portico.storage.analytics import GroupBy, UsageAnalytics, UsageQuery
from portico.storage.timeseries import (
    MAX_LIMIT,
    Grain,
    SeriesError,
    SeriesQuery,
    TimeSeries,
    parse_group,
    parse_metrics,
)

DEFAULT_RANGE = timedelta(hours=24)


def mount_analytics(app: FastAPI, analytics: UsageAnalytics, auth: Authenticator) -> None:
    router = APIRouter(
        tags=["analytics"], dependencies=[require_gateway_key(auth)], responses=error_responses(401, 422)
    )

    @router.get("/v1/analytics/usage", summary="Requests, errors, tokens, cost and latency per group")
    async def usage(
        group_by: Annotated[GroupBy, Query(description="model, provider, day (UTC), identity or key.")],
        since: Annotated[
            datetime | None, Query(alias="from", description="ISO 8601; without a zone, UTC. Inclusive.")
        ] = None,
        until: Annotated[
            datetime | None, Query(alias="to", description="ISO 8601; without a zone, UTC. Exclusive.")
        ] = None,
        identity_id: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
        percentiles: Annotated[
            bool, Query(description="Latency p50/p95 per group too (sorts the range: slower on large ranges).")
        ] = False,
    ) -> Response:
        since, until = _utc(since), _utc(until)
        if since is not None and until is not None and until <= since:
            raise ValidationFailed([FieldError(("query", "to"), "must be later than `from`")])
        rows = await analytics.usage(UsageQuery(group_by, since, until, identity_id, percentiles))
        return JSONResponse(
            {
                "object": "list",
                "group_by": group_by,
                "from": since.isoformat() if since is not None else None,
                "to": until.isoformat() if until is not None else None,
                "identity_id": identity_id,
                "data": rows,
            }
        )

    series = TimeSeries(analytics.db)

    @router.get("/v1/analytics/timeseries", summary="Metrics per UTC minute, hour or day, per group")
    async def timeseries(
        metric: Annotated[
            str,
            Query(
                description="One or a comma list: requests, errors, error_rate, prompt_tokens, completion_tokens, "
                "total_tokens, cached_tokens, reasoning_tokens, cost_usd, latency_p50|p90|p99, ttft_p50|p90|p99, "
                "cache_hit_rate."
            ),
        ],
        grain: Annotated[Grain, Query(description="minute, hour or day (UTC).")] = "hour",
        since: Annotated[
            datetime | None,
            Query(alias="from", description="ISO 8601; without a zone, UTC. Inclusive; default `to` − 24 h."),
        ] = None,
        until: Annotated[
            datetime | None, Query(alias="to", description="ISO 8601; without a zone, UTC. Exclusive; default now.")
        ] = None,
        group_by: Annotated[
            str | None, Query(description="model, provider, identity, deployment, status or metadata.<key>.")
        ] = None,
        limit: Annotated[
            int, Query(ge=1, le=MAX_LIMIT, description="Groups kept, by requests; the rest fold into `other`.")
        ] = 20,
        provider: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
        model: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
        identity_id: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
    ) -> Response:
        until = _utc(until) or datetime.now(UTC)
        since = _utc(since) or until - DEFAULT_RANGE
        try:
            query = SeriesQuery(
                parse_metrics(metric), grain, since, until, parse_group(group_by), limit, provider, model, identity_id
            )
            answer = await series.series(query)
        except SeriesError as bad:
            raise ValidationFailed([FieldError(("query", bad.param), str(bad))]) from None
        head = {"object": "timeseries", "grain": grain, "from": since.isoformat(), "to": until.isoformat()}
        return JSONResponse({**head, "metrics": list(query.metrics), "group_by": group_by, "limit": limit, **answer})

    app.include_router(router)


def _utc(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment
