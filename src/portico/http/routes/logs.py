"""GET /v1/logs and /v1/logs/{request_id}: the call log, newest first, for holders of a gateway key.

Auth and error bodies come from `http/admin_deps.py`, like every other non-chat route."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Protocol

from fastapi import APIRouter, FastAPI, Query, Response
from fastapi.responses import JSONResponse

from portico.core.errors import FieldError, NotFound, ValidationFailed
from portico.core.records import CallRecord, LogFilter
from portico.http.admin_deps import error_responses, require_gateway_key
from portico.http.auth import Authenticator


class LogStore(Protocol):
    async def list(
        self,
        *,
        limit: int = 50,
        offset: int = 0,
        provider: str | None = None,
        model: str | None = None,
        status: int | None = None,
        trace_id: str | None = None,
        where: LogFilter | None = None,
    ) -> list[CallRecord]: ...

    async def count(
        self,
        *,
        provider: str | None = None,
        model: str | None = None,
        status: int | None = None,
        trace_id: str | None = None,
        where: LogFilter | None = None,
    ) -> int: ...

    async def get(self, request_id: str) -> CallRecord | None: ...


def mount_logs(app: FastAPI, store: LogStore, auth: Authenticator) -> None:
    router = APIRouter(tags=["logs"], dependencies=[require_gateway_key(auth)], responses=error_responses(401, 422))

    @router.get("/v1/logs", summary="List call records, newest first")
    async def list_logs(
        limit: int = Query(50, ge=1, le=1000),
        offset: int = Query(0, ge=0),
        provider: str | None = None,
        model: str | None = None,
        status: int | None = None,
        trace_id: str | None = None,
        identity_id: str | None = None,
        thread_id: str | None = None,
        dialect: str | None = None,
        since: Annotated[datetime | None, Query(description="ISO 8601; without a zone, UTC. Inclusive.")] = None,
        until: Annotated[datetime | None, Query(description="ISO 8601; without a zone, UTC. Exclusive.")] = None,
        metadata: Annotated[list[str] | None, Query(description="key=value, repeatable; all must match.")] = None,
    ) -> Response:
        where = LogFilter(
            provider,
            model,
            status,
            trace_id,
            identity_id,
            thread_id,
            dialect,
            _utc(since),
            _utc(until),
            _pairs(metadata or []),
        )
        records = await store.list(limit=limit, offset=offset, where=where)
        total = await store.count(where=where)
        data = [r.as_json() for r in records]
        return JSONResponse({"object": "list", "data": data, "total": total, "limit": limit, "offset": offset})

    @router.get("/v1/logs/{request_id}", summary="One call record by request id", responses=error_responses(404))
    async def get_log(request_id: str) -> Response:
        record = await store.get(request_id)
        if record is None:
            raise NotFound(f"No call record for request '{request_id}'.", code="log_not_found")
        return JSONResponse(record.as_json())

    app.include_router(router)


def _utc(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def _pairs(given: list[str]) -> tuple[tuple[str, str], ...]:
    pairs = []
    for item in given:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValidationFailed([FieldError(("query", "metadata"), f"{item!r} is not key=value")])
        pairs.append((key, value))
    return tuple(pairs)
