"""A mock Azure OpenAI upstream: the OpenAI mock behind Azure's deployment routes, auth header and `api-version`.

Requests to `/openai/deployments/...` must carry `api-version` and either the `api-key` header or an Entra ID
bearer token, answered with Azure's own error bodies otherwise; everything else is `tests.upstreams.openai`.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from tests.upstreams import openai
from tests.upstreams.server import UpstreamState, read_json

API_KEY = "azure-test-key"
AD_TOKEN = "entra-test-token"
API_VERSIONS = frozenset({"2024-10-21", "2024-06-01", "2025-04-01-preview"})


def install(app: web.Application, state: UpstreamState) -> None:
    openai.install(app, state)

    @web.middleware
    async def azure_gate(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith("/openai/deployments/"):
            return await handler(request)
        version = request.query.get("api-version")
        if version is None:
            state.record(request, await read_json(request))
            message = "The api-version query parameter (?api-version=) is required for all requests."
            return web.json_response({"error": {"code": "MissingApiVersionParameter", "message": message}}, status=404)
        if version not in API_VERSIONS:
            state.record(request, await read_json(request))
            message = "The API version is not supported."
            return web.json_response({"error": {"code": "UnsupportedApiVersion", "message": message}}, status=404)
        key_ok = request.headers.get("api-key") == API_KEY
        token_ok = request.headers.get("Authorization") == f"Bearer {AD_TOKEN}"
        if not (key_ok or token_ok):
            state.record(request, await read_json(request))
            message = (
                "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid "
                "key for an active subscription and use a correct regional API endpoint for your resource."
            )
            return web.json_response({"error": {"code": "401", "message": message}}, status=401)
        return await handler(request)

    app.middlewares.append(azure_gate)
