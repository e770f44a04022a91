"""What every non-chat route shares: one gateway-key dependency, one error body, the handlers that enforce it.

Every error the FastAPI app answers (its own 404/405/422 included) has the chat path's shape from
`http/errors.py`; nothing here is imported by the chat hot path.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from http import HTTPStatus
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.params import Depends as DependsParam
from fastapi.responses import Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from portico.core.errors import FieldError, MalformedJSON, NotFound, PorticoError, RequestError, ValidationFailed
from portico.core.ids import time_ordered_id
from portico.http.auth import Authenticator
from portico.http.errors import error_body, error_headers, internal_error

log = logging.getLogger("portico.http")

_BEARER = HTTPBearer(auto_error=False, description="A gateway key from `auth.keys`.")
_PORTKEY_KEY = APIKeyHeader(
    name="x-portkey-api-key", auto_error=False, description="The same gateway key, as the Portkey SDK sends it."
)
SECURITY: list[dict[str, list[str]]] = [{"HTTPBearer": []}, {"APIKeyHeader": []}]
"""The OpenAPI security requirement of a route that takes the gateway key (either header)."""
SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "HTTPBearer": {"type": "http", "scheme": "bearer", "description": _BEARER.model.description},
    "APIKeyHeader": {
        "type": "apiKey",
        "in": "header",
        "name": "x-portkey-api-key",
        "description": _PORTKEY_KEY.model.description,
    },
}
"""The same schemes FastAPI derives from the two security parameters, for routes declared without them."""


class Conflict(RequestError):
    http_status = 409
    type = "conflict_error"


class MethodNotAllowed(RequestError):
    http_status = 405


def require_gateway_key(auth: Authenticator) -> DependsParam:
    """`Depends(...)` for a router: 401 in the gateway's error shape unless a gateway key is presented.

    The two security parameters only declare the schemes in /docs; the Authenticator reads the raw headers
    itself, so both routes accept exactly what the chat path accepts."""

    def gateway_key(
        request: Request,
        _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)],
        _portkey: Annotated[str | None, Security(_PORTKEY_KEY)],
    ) -> None:
        auth.client_key(dict(request.headers.raw))

    dependency: DependsParam = Depends(gateway_key)
    return dependency


def admin_router(auth: Authenticator, prefix: str, tag: str) -> APIRouter:
    """An admin collection's router: every route under `prefix` takes the gateway key and documents 401 and 422."""
    return APIRouter(
        prefix=prefix, tags=[tag], dependencies=[require_gateway_key(auth)], responses=error_responses(401, 422)
    )


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None
    provider: str | None = Field(None, description="On upstream failures: the provider entry that failed.")
    upstream_status: int | None = Field(None, description="On upstream HTTP failures: the upstream's status.")


class FieldErrorOut(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorBody(BaseModel):
    """The gateway's error body, on every route."""

    error: ErrorDetail


class ValidationErrorBody(BaseModel):
    """A 422: FastAPI/vLLM's `detail` list and the OpenAI-style `error`, in one body."""

    detail: list[FieldErrorOut] = Field(description="Every field that broke the schema.")
    error: ErrorDetail


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route: each status documented with the error schema it answers with."""
    described = {
        400: "Malformed request",
        401: "Missing or wrong gateway key",
        404: "Not found",
        409: "Already exists",
        413: "The body is over `server.max_body_bytes`",
        422: "A field breaks the schema",
        429: "Rate limited (upstream)",
        502: "The upstream failed or answered something that is not its API",
        504: "The upstream timed out",
    }
    return {
        status: {"model": ValidationErrorBody if status == 422 else ErrorBody, "description": described[status]}
        for status in statuses
    }


def error_response(error: PorticoError, extra: Sequence[tuple[bytes, bytes]] = ()) -> Response:
    headers = {k.decode(): v.decode() for k, v in (*error_headers(error), *extra)}
    return Response(error_body(error, "openai"), error.http_status, headers, media_type="application/json")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(PorticoError, _on_portico_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(Exception, _on_unexpected)


async def _on_portico_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, PorticoError)
    return error_response(exc)


async def _on_validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return error_response(validation_error(exc.errors()))


def validation_error(errors: Sequence[Any]) -> PorticoError:
    """FastAPI's error list as the chat path reports it; a body that is not JSON is a 400 there too."""
    fields = [_field_error(e) for e in errors if isinstance(e, dict)]
    if any(f.type == "json_invalid" for f in fields):
        return MalformedJSON()
    return ValidationFailed(fields or [FieldError(("body",), "Invalid request.")])


def _field_error(error: dict[str, Any]) -> FieldError:
    loc = tuple(p if isinstance(p, int) else str(p) for p in error.get("loc", ()))
    return FieldError(loc, str(error.get("msg", "Invalid value.")), str(error.get("type", "value_error")))


_HTTP_ERRORS: dict[int, Callable[[Request], PorticoError]] = {
    404: lambda r: NotFound(f"No route for '{r.url.path}'.", code="not_found"),
    405: lambda r: MethodNotAllowed(f"{r.method} is not allowed on '{r.url.path}'.", code="method_not_allowed"),
}
"""Starlette's routing failures, which carry only the status phrase, told in words."""
_CODES = {404: "not_found", 405: "method_not_allowed"}


async def _on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    make = _HTTP_ERRORS.get(exc.status_code)
    if make is not None and exc.detail == HTTPStatus(exc.status_code).phrase:
        error = make(request)
    else:
        error = PorticoError(str(exc.detail), code=_CODES.get(exc.status_code, f"http_{exc.status_code}"))
        error.http_status = exc.status_code
        error.type = "invalid_request_error" if exc.status_code < 500 else "internal_error"
    extra = [(k.encode(), v.encode()) for k, v in (exc.headers or {}).items()]
    return error_response(error, extra)


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    """A bug: a 500 in the error shape with an id to find it by, never a traceback or a text/plain body."""
    request_id = time_ordered_id()
    log.error("unhandled error serving %s %s (%s)", request.method, request.url.path, request_id, exc_info=exc)
    return error_response(internal_error(request_id))


def invalid_body(field: str | None, message: str) -> ValidationFailed:
    """A body the schema accepts but this gateway cannot use: a 422 like any schema violation."""
    return ValidationFailed([FieldError(("body", field) if field else ("body",), message)])
