"""GET /v1/logs and /v1/logs/{request_id}: the call log, newest first, for holders of a gateway key.

Auth and error bodies come from `http/admin_deps.py`, like every other non-chat route."""

from __future__ import annotations

from typing import Protocol

from fastapi import APIRouter, FastAPI, Query, Response
from fastapi.responses import JSONResponse

from portico.core.errors import NotFound
from portico.core.records import CallRecord
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
    ) -> list[CallRecord]: ...

    async def count(
        self,
        *,
        provider: str | None = None,
        model: str | None = None,
        status: int | None = None,
        trace_id: str | None = None,
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
    ) -> Response:
        records = await store.list(
            limit=limit, offset=offset, provider=provider, model=model, status=status, trace_id=trace_id
        )
        total = await store.count(provider=provider, model=model, status=status, trace_id=trace_id)
        data = [r.as_json() for r in records]
        return JSONResponse({"object": "list", "data": data, "total": total, "limit": limit, "offset": offset})

    @router.get("/v1/logs/{request_id}", summary="One call record by request id", responses=error_responses(404))
    async def get_log(request_id: str) -> Response:
        record = await store.get(request_id)
        if record is None:
            raise NotFound(f"No call record for request '{request_id}'.", code="log_not_found")
        return JSONResponse(record.as_json())

    app.include_router(router)
