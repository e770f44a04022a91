"""Admin API for what Portkey clients refer to by id: virtual keys (`x-portkey-virtual-key`) and routing configs
(`x-portkey-config: <id>`). Gateway-key protected; secrets go in once and come back only masked. Auth and error
bodies come from `http/admin_deps.py`, like every other non-chat route."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, FastAPI, Response
from pydantic import BaseModel, Field

from portico.core.errors import NotFound
from portico.http.admin_deps import Conflict, error_responses, invalid_body, require_gateway_key
from portico.http.auth import Authenticator
from portico.pipeline.hook_configs import hook_problem
from portico.storage.vault import Vault
from portico.wire.portkey_config import check_portkey_config


class VirtualKeyIn(BaseModel):
    provider: str = Field(description="A provider name from this gateway's config (openai, anthropic, my-vllm, ...).")
    api_key: str | None = Field(None, description="The provider credential; stored encrypted, never returned.")
    base_url: str | None = None
    id: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="Default: generated (vk-...).")
    note: str = ""


def mount_routing_admin(
    app: FastAPI, vault: Vault, auth: Authenticator, is_provider: Any, is_guardrail: Callable[[str], bool] | None = None
) -> None:
    """`is_guardrail`: whether a guardrail id is stored (a config's hooks may name one); None: not checked here."""
    router = APIRouter(
        prefix="/v1/admin",
        tags=["admin"],
        dependencies=[require_gateway_key(auth)],
        responses=error_responses(401, 422),
    )

    @router.post("/virtual-keys", status_code=201, responses=error_responses(400, 409))
    async def create_key(body: VirtualKeyIn) -> dict[str, Any]:
        if not is_provider(body.provider):
            raise invalid_body("provider", f"provider '{body.provider}' is not configured on this gateway")
        if body.id is not None and vault.get_key(body.id) is not None:
            raise Conflict(f"virtual key '{body.id}' already exists", code="virtual_key_exists", param="id")
        record = await vault.add_key(
            body.provider, body.api_key, base_url=body.base_url, key_id=body.id, note=body.note
        )
        return record.public(vault.box)

    @router.get("/virtual-keys")
    async def list_keys() -> dict[str, Any]:
        return {"data": [k.public(vault.box) for k in vault.virtual_keys()]}

    @router.delete("/virtual-keys/{key_id}", status_code=204, responses=error_responses(404))
    async def delete_key(key_id: str) -> Response:
        if not await vault.delete_key(key_id):
            raise NotFound(f"virtual key '{key_id}' not found", code="virtual_key_not_found")
        return Response(status_code=204)

    @router.put("/configs/{config_id}", responses=error_responses(400))
    async def put_config(config_id: str, body: dict[str, Any]) -> dict[str, Any]:
        problem = check_portkey_config(body, virtual_keys=vault.resolve)  # refuse now, not on every request
        problem = problem or hook_problem(body, is_guardrail)
        if problem is not None:
            raise invalid_body(None, problem)
        await vault.put_config(config_id, body)
        return {"id": config_id, "config": body}

    @router.get("/configs/{config_id}", responses=error_responses(404))
    async def get_config(config_id: str) -> dict[str, Any]:
        config = vault.config(config_id)
        if config is None:
            raise NotFound(f"config '{config_id}' not found", code="config_not_found")
        return {"id": config_id, "config": config}

    @router.get("/configs")
    async def list_configs() -> dict[str, Any]:
        return {"data": [{"id": cid, "config": c} for cid, c in sorted(vault.configs().items())]}

    @router.delete("/configs/{config_id}", status_code=204, responses=error_responses(404))
    async def delete_config(config_id: str) -> Response:
        if not await vault.delete_config(config_id):
            raise NotFound(f"config '{config_id}' not found", code="config_not_found")
        return Response(status_code=204)

    app.include_router(router)
