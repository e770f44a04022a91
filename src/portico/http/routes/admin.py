"""Everything off the chat hot path, on FastAPI: /health, /v1/models, /metrics, the docs at /docs and /redoc.

Every error it answers, FastAPI's own 404/405/422 included, has the gateway's error shape (`http/admin_deps.py`).
The chat routes are served by the raw ASGI handler; they are declared here only so /docs documents them, with the
request schema generated from the same msgspec types that validate requests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
from fastapi import FastAPI, Response
from fastapi.openapi.utils import get_openapi
from fastapi.params import Depends as DependsParam
from fastapi_offline import FastAPIOffline

from portico import __version__
from portico.http.admin_deps import (
    SECURITY,
    SECURITY_SCHEMES,
    ValidationErrorBody,
    error_responses,
    install_error_handlers,
)
from portico.http.routes.table import RAW_ROUTES, RawRoute


def create_admin_app(
    *,
    health: Callable[[], dict[str, Any]],
    models: Callable[[], list[dict[str, Any]]],
    metrics: Callable[[], tuple[bytes, str]] | None = None,
    metrics_guard: DependsParam | None = None,
) -> FastAPI:
    # Swagger UI and ReDoc load their scripts and styles from the package (fastapi-offline), never from a CDN:
    # the docs work on a machine without internet.
    app = FastAPIOffline(title="Portico", version=__version__, description="Self-hosted AI gateway.")
    install_error_handlers(app)

    @app.get("/health", tags=["ops"])
    async def get_health(response: Response) -> dict[str, Any]:
        report = health()
        response.status_code = 200 if report.get("ready") else 503
        return report

    @app.get("/health/live", tags=["ops"])
    async def get_live() -> dict[str, str]:
        """200 while the process answers; reads no dependency (for liveness probes). Readiness: `/health`."""
        return {"status": "live"}

    @app.get("/v1/models", tags=["models"])
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": models()}

    if metrics is not None:
        render, guards = metrics, [metrics_guard] if metrics_guard is not None else []

        @app.get("/metrics", tags=["ops"], include_in_schema=False, dependencies=guards)
        async def get_metrics() -> Response:
            payload, content_type = render()
            return Response(payload, media_type=content_type)

    for route in RAW_ROUTES:
        _declare_raw(app, route)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _declare_raw(app: FastAPI, route: RawRoute) -> None:
    async def served_by_raw_handler() -> None:  # pragma: no cover - the raw ASGI handler serves this path
        return None

    app.add_api_route(
        route.path,
        served_by_raw_handler,
        methods=[route.method],
        tags=[route.endpoint],
        summary=route.summary,
        operation_id=route.endpoint + route.path.replace("/", "_"),
        responses=error_responses(400, 401, 404, 413, 422, 429, 502, 504),
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": f"#/components/schemas/{route.request_schema.__name__}"}}
                },
            },
            "security": SECURITY,
        },
    )


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        schemas = tuple({route.request_schema for route in RAW_ROUTES})
        _, components = msgspec.json.schema_components(schemas, ref_template="#/components/schemas/{name}")
        schema.setdefault("components", {}).setdefault("schemas", {}).update(components)
        schemes = schema["components"].setdefault("securitySchemes", {})
        for name, scheme in SECURITY_SCHEMES.items():  # routes declared without the security parameters use them
            schemes.setdefault(name, scheme)
        _document_own_422s(schema)
        app.openapi_schema = schema
    return app.openapi_schema


def _document_own_422s(schema: dict[str, Any]) -> None:
    """FastAPI documents its own 422 body on every route with parameters that does not declare one; the gateway
    never answers it (`admin_deps.install_error_handlers`), so such routes get the body they do get."""
    components = schema["components"]["schemas"]
    if "HTTPValidationError" not in components:
        return
    ours = {"$ref": "#/components/schemas/ValidationErrorBody"}
    for item in schema.get("paths", {}).values():
        for operation in item.values():
            body = operation.get("responses", {}).get("422", {}).get("content", {}).get("application/json", {})
            if body.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"):
                body["schema"] = ours
    own = ValidationErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in own.pop("$defs", {}).items():
        components.setdefault(name, definition)
    components.setdefault("ValidationErrorBody", own)
    del components["HTTPValidationError"], components["ValidationError"]
