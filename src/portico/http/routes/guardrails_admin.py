"""Admin API for custom guardrails (`/v1/admin/guardrails`): a named combination of built-in checks with their
parameters, or a webhook. A spec is compiled before it is stored, so a request never meets a broken one; ids of
the built-ins (`orq_pii_detection`, ...) are reserved. Auth and error bodies come from `http/admin_deps.py`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, FastAPI, Path, Response
from pydantic import BaseModel, Field

from portico.core.errors import NotFound
from portico.guardrails.base import GuardrailConfigError
from portico.guardrails.custom import build_custom
from portico.guardrails.registry import BUILTIN_IDS, KINDS, REDACTION_ID
from portico.http.admin_deps import error_responses, invalid_body, require_gateway_key
from portico.http.auth import Authenticator
from portico.storage.guardrails import GuardrailStore

_ID = Path(pattern=r"^[A-Za-z0-9_.-]{1,128}$", description="The key requests name in `guardrails[].id`.")


class CheckIn(BaseModel):
    kind: str = Field(description=f"One of: {', '.join(sorted(KINDS))}.")
    params: dict[str, Any] = Field(default_factory=dict)


class WebhookIn(BaseModel):
    url: str
    timeout_ms: float = Field(3000, gt=0, le=60000)
    on_error: str = Field("deny", pattern="^(allow|deny)$", description="deny: fail closed; allow: fail open.")
    headers: dict[str, str] = Field(default_factory=dict)


class GuardrailIn(BaseModel):
    description: str = ""
    checks: list[CheckIn] | None = Field(None, description="All must pass.")
    webhook: WebhookIn | None = None
    on_fail: str = Field(
        "deny", pattern="^(deny|retry)$", description="retry: an answer this refuses is asked for once more (JSON)."
    )


def mount_guardrails_admin(
    app: FastAPI, store: GuardrailStore, auth: Authenticator, is_provider: Callable[[str], bool]
) -> None:
    router = APIRouter(
        prefix="/v1/admin/guardrails",
        tags=["admin"],
        dependencies=[require_gateway_key(auth)],
        responses=error_responses(401, 422),
    )

    @router.put("/{guardrail_id}")
    async def put_guardrail(body: GuardrailIn, guardrail_id: str = _ID) -> dict[str, Any]:
        if guardrail_id in BUILTIN_IDS or guardrail_id == REDACTION_ID:
            raise invalid_body(None, f"'{guardrail_id}' is a built-in guardrail id")
        spec = body.model_dump(exclude_none=True)
        for index, check in enumerate(body.checks or ()):
            provider = check.params.get("provider") if check.kind == "moderation" else None
            if provider is not None and not (isinstance(provider, str) and is_provider(provider)):
                raise invalid_body(None, f"checks[{index}]: provider '{provider}' is not configured on this gateway")
        try:
            build_custom(spec)
        except GuardrailConfigError as exc:
            raise invalid_body(None, str(exc)) from None
        await store.put(guardrail_id, spec)
        return {"id": guardrail_id, **spec}

    @router.get("/{guardrail_id}", responses=error_responses(404))
    async def get_guardrail(guardrail_id: str) -> dict[str, Any]:
        spec = store.get(guardrail_id)
        if spec is None:
            raise NotFound(f"guardrail '{guardrail_id}' not found", code="guardrail_not_found")
        return {"id": guardrail_id, **spec}

    @router.get("")
    async def list_guardrails() -> dict[str, Any]:
        return {"data": [{"id": gid, **spec} for gid, spec in store.all().items()]}

    @router.delete("/{guardrail_id}", status_code=204, responses=error_responses(404))
    async def delete_guardrail(guardrail_id: str) -> Response:
        if not await store.delete(guardrail_id):
            raise NotFound(f"guardrail '{guardrail_id}' not found", code="guardrail_not_found")
        return Response(status_code=204)

    app.include_router(router)
