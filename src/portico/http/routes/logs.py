"""GET /v1/logs and /v1/logs/{request_id}: the call log, newest first, for holders of a gateway key."""

from __future__ import annotations

from typing import Protocol

from fastapi import APIRouter, FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse

from portico.core.errors import NotFound, PorticoError
from portico.core.records import CallRecord
from portico.http.auth import Authenticator
from portico.http.errors import error_body, error_headers


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
    router = APIRouter(tags=["logs"])

    @router.get("/v1/logs", summary="List call records, newest first")
    async def list_logs(
        request: Request,
        limit: int = Query(50, ge=1, le=1000),
        offset: int = Query(0, ge=0),
        provider: str | None = None,
        model: str | None = None,
        status: int | None = None,
        trace_id: str | None = None,
    ) -> Response:
        if (denied := _deny(auth, request)) is not None:
            return denied
        records = await store.list(
            limit=limit, offset=offset, provider=provider, model=model, status=status, trace_id=trace_id
        )
        total = await store.count(provider=provider, model=model, status=status, trace_id=trace_id)
        data = [r.as_json() for r in records]
        return JSONResponse({"object": "list", "data": data, "total": total, "limit": limit, "offset": offset})

    @router.get("/v1/logs/{request_id}", summary="One call record by request id")
    async def get_log(request: Request, request_id: str) -> Response:
        if (denied := _deny(auth, request)) is not None:
            return denied
        record = await store.get(request_id)
        if record is None:
            return _error(NotFound(f"No call record for request '{request_id}'.", code="log_not_found"))
        return JSONResponse(record.as_json())

    app.include_router(router)


def _deny(auth: Authenticator, request: Request) -> Response | None:
    try:
        auth.client_key(dict(request.headers.raw))
    except PorticoError as error:
        return _error(error)
    return None


def _error(error: PorticoError) -> Response:
    headers = {k.decode(): v.decode() for k, v in error_headers(error)}
    return Response(error_body(error, "openai"), error.http_status, headers, media_type="application/json")
