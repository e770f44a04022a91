"""Everything off the chat hot path, on FastAPI: /health, /v1/models, /metrics and the OpenAPI docs at /docs.

The chat routes are served by the raw ASGI handler; they are declared here only so /docs documents them, with the
request schema generated from the same msgspec types that validate requests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
from fastapi import FastAPI, Response
from fastapi.openapi.utils import get_openapi

from portico import __version__
from portico.wire.openai_chat import ChatCompletionRequest

CHAT_PATHS = (
    "/v1/chat/completions",
    "/v2/router/chat/completions",
    "/v2/gateway/chat/completions",
)


def create_admin_app(
    *,
    health: Callable[[], dict[str, Any]],
    models: Callable[[], list[dict[str, Any]]],
    metrics: Callable[[], tuple[bytes, str]] | None = None,
) -> FastAPI:
    app = FastAPI(title="Portico", version=__version__, description="Self-hosted AI gateway.")

    @app.get("/health", tags=["ops"])
    async def get_health(response: Response) -> dict[str, Any]:
        report = health()
        response.status_code = 200 if report.get("ready") else 503
        return report

    @app.get("/v1/models", tags=["models"])
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": models()}

    if metrics is not None:
        render = metrics

        @app.get("/metrics", tags=["ops"], include_in_schema=False)
        async def get_metrics() -> Response:
            payload, content_type = render()
            return Response(payload, media_type=content_type)

    for path in CHAT_PATHS:
        _declare_chat(app, path)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _declare_chat(app: FastAPI, path: str) -> None:
    async def chat_completions() -> None:  # pragma: no cover - the raw ASGI handler serves this path
        return None

    app.add_api_route(
        path,
        chat_completions,
        methods=["POST"],
        tags=["chat"],
        summary="Create a chat completion (JSON, or SSE with stream: true)",
        operation_id="chat" + path.replace("/", "_"),
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ChatCompletionRequest"}}},
            }
        },
    )


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        _, components = msgspec.json.schema_components(
            (ChatCompletionRequest,), ref_template="#/components/schemas/{name}"
        )
        schema.setdefault("components", {}).setdefault("schemas", {}).update(components)
        app.openapi_schema = schema
    return app.openapi_schema
