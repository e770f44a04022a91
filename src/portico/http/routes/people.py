"""GET /v1/identities, /v1/identities/{id} and /v1/threads/{id}: who used the gateway, with their totals, and a
conversation's requests in order; for holders of a gateway key, like `/v1/logs`."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Query, Response
from fastapi.responses import JSONResponse

from portico.core.errors import NotFound
from portico.http.admin_deps import error_responses, require_gateway_key
from portico.http.auth import Authenticator
from portico.storage.people import PeopleReads


def mount_people(app: FastAPI, reads: PeopleReads, auth: Authenticator) -> None:
    router = APIRouter(tags=["logs"], dependencies=[require_gateway_key(auth)], responses=error_responses(401, 422))

    @router.get("/v1/identities", summary="Identities seen in calls, most recently seen first, with their totals")
    async def list_identities(limit: int = Query(50, ge=1, le=1000), offset: int = Query(0, ge=0)) -> Response:
        data, total = await reads.identities(limit=limit, offset=offset)
        return JSONResponse({"object": "list", "data": data, "total": total, "limit": limit, "offset": offset})

    @router.get("/v1/identities/{identity_id}", summary="One identity with its totals", responses=error_responses(404))
    async def get_identity(identity_id: str) -> Response:
        found = await reads.identity(identity_id)
        if found is None:
            raise NotFound(f"No calls were recorded for identity '{identity_id}'.", code="identity_not_found")
        return JSONResponse(found)

    @router.get("/v1/threads/{thread_id}", summary="A thread's call records, oldest first")
    async def get_thread(
        thread_id: str, limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0)
    ) -> Response:
        records, total = await reads.thread(thread_id, limit=limit, offset=offset)
        data = [record.as_json() for record in records]
        return JSONResponse(
            {"object": "list", "thread_id": thread_id, "data": data, "total": total, "limit": limit, "offset": offset}
        )

    app.include_router(router)
