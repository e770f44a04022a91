"""Admin API for deployments under `/v1/admin/deployments` (create, read, list, update, delete, versions, roll
back) and orq's `GET /v2/deployments` listing. Gateway-key protected; a body is checked in full before anything is
written (`wire/deployments.py`), so an invalid deployment is never stored. Auth and errors: `http/admin_deps.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, Query, Response
from pydantic import BaseModel, Field

from portico.core.deployments import Deployment
from portico.http.admin_deps import admin_router, error_responses, require_gateway_key
from portico.http.auth import Authenticator
from portico.pipeline.deployments import PromptLookup
from portico.storage.deployments import DeploymentStore, deployment_not_found
from portico.wire.deployment_replies import new_ulid
from portico.wire.deployments import (
    DeploymentCreate,
    DeploymentPublic,
    DeploymentUpdate,
    camel_parameters,
    deployment_content,
)

ProviderOf = Callable[[str], tuple[str, str]]
"""A `provider/model` address → (orq's provider name, the bare model)."""


class RollbackIn(BaseModel):
    version: int = Field(ge=1, description="The version to make current again (as a new version).")


def public(deployment: Deployment) -> DeploymentPublic:
    content = deployment.content
    return DeploymentPublic(
        key=deployment.key,
        id=deployment.id,
        version=deployment.version,
        description=deployment.description,
        variants=list(content.get("variants") or ()),
        routing=list(content.get("routing") or ()),
        default_variant=deployment.default_variant,
        created_at=int(deployment.created_at),
        updated_at=int(deployment.updated_at),
    )


def mount_deployments_admin(
    app: FastAPI, store: DeploymentStore, prompts: PromptLookup, auth: Authenticator, provider_of: ProviderOf
) -> None:
    def prompt_model(prompt_id: str, version: int | Literal["latest"]) -> tuple[bool, str | None]:
        found = prompts(prompt_id, version)
        return (found is not None, found.model if found is not None else None)

    def existing(key: str) -> Deployment:
        found = store.get(key)
        if found is None:
            raise deployment_not_found(key)
        return found

    router = admin_router(auth, "/v1/admin/deployments", "deployments")

    @router.post("", status_code=201, responses=error_responses(409))
    async def create_deployment(body: DeploymentCreate) -> DeploymentPublic:
        """The one-variant form (`model`, `prompt`, `parameters`, ... at the top level) or `variants` + `routing`."""
        content = deployment_content(body, prompt_model)
        return public(await store.create(body.key, content, new_ulid()))

    @router.get("")
    async def list_deployments() -> dict[str, list[DeploymentPublic]]:
        return {"data": [public(d) for d in store.current()]}

    @router.get("/{key}", responses=error_responses(404))
    async def get_deployment(key: str) -> DeploymentPublic:
        return public(existing(key))

    @router.put("/{key}", responses=error_responses(404))
    async def update_deployment(key: str, body: DeploymentUpdate, response: Response) -> DeploymentPublic:
        """A new version, unless the body equals the current version (then nothing is written)."""
        if await store.find(key) is None:  # 404 before the body's checks, read from the database, not a stale copy
            raise deployment_not_found(key)
        deployment, new = await store.update(key, deployment_content(body, prompt_model))
        response.headers["x-portico-deployment-changed"] = "true" if new else "false"
        return public(deployment)

    @router.delete("/{key}", status_code=204, responses=error_responses(404))
    async def delete_deployment(key: str) -> Response:
        if not await store.delete(key):
            raise deployment_not_found(key)
        return Response(status_code=204)

    @router.get("/{key}/versions", responses=error_responses(404))
    async def list_versions(key: str) -> dict[str, list[DeploymentPublic]]:
        history = store.versions(key)
        if history is None:
            raise deployment_not_found(key)
        return {"data": [public(d) for d in reversed(history)]}

    @router.get("/{key}/versions/{version}", responses=error_responses(404))
    async def get_version(key: str, version: int) -> DeploymentPublic:
        existing(key)
        found = store.version(key, version)
        if found is None:
            raise deployment_not_found(key, version)
        return public(found)

    @router.post("/{key}/rollback", responses=error_responses(404))
    async def roll_back(key: str, body: RollbackIn) -> DeploymentPublic:
        """Make `version` current again: its content becomes a new version, so history is never rewritten."""
        return public(await store.rollback(key, body.version))

    app.include_router(router)
    mount_listing(app, store, prompts, auth, provider_of)


def mount_listing(
    app: FastAPI, store: DeploymentStore, prompts: PromptLookup, auth: Authenticator, provider_of: ProviderOf
) -> None:
    """orq's `GET /v2/deployments`: newest first, `limit` 1-50, cursors by deployment id."""
    router = APIRouter(tags=["deployments"], dependencies=[require_gateway_key(auth)], responses=error_responses(401))

    @router.get("/v2/deployments")
    async def list_orq(
        limit: int = Query(10, ge=1, le=50),
        starting_after: str | None = None,
        ending_before: str | None = None,
    ) -> dict[str, Any]:
        items = sorted(store.current(), key=lambda d: (d.created_at, d.id), reverse=True)
        ids = [d.id for d in items]
        if starting_after in ids:
            items = items[ids.index(starting_after) + 1 :]
        elif ending_before in ids:
            items = items[: ids.index(ending_before)][-limit:]
        page = items[:limit]
        return {
            "object": "list",
            "data": [_orq_item(d, prompts, provider_of) for d in page],
            "has_more": len(items) > len(page),
        }

    app.include_router(router)


def _orq_item(deployment: Deployment, prompts: PromptLookup, provider_of: ProviderOf) -> dict[str, Any]:
    variant = deployment.variant(deployment.default_variant)
    stored = prompts(variant.prompt_id, variant.prompt_version) if variant.prompt_id else None
    messages = list(variant.messages or (stored.messages if stored else ()))
    parameters = {**(stored.parameters if stored else {}), **variant.parameters}
    provider, model = provider_of(variant.model or (stored.model if stored else None) or "")
    return {
        "id": deployment.id,
        "created": _iso(deployment.created_at),
        "updated": _iso(deployment.updated_at),
        "key": deployment.key,
        "description": deployment.description,
        "version": str(deployment.version),
        "prompt_config": {
            "tools": list(variant.tools or ()),
            "model": model,
            "model_type": "chat",
            "model_parameters": camel_parameters(parameters),
            "provider": provider,
            "messages": messages,
        },
    }


def _iso(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
