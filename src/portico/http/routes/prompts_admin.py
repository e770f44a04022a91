"""Admin API of stored prompts under `/v1/admin/prompts`: create, read, list, update (a new version), delete, and
read any version. Gateway-key protected; a body that breaks the schema is refused with 422 naming its path and is
never stored. Auth and error bodies come from `http/admin_deps.py`, like every other non-chat route."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import FastAPI, Path, Response

from portico.core.errors import FieldError, ValidationFailed
from portico.core.prompts import prompt_not_found
from portico.http.admin_deps import admin_router, error_responses
from portico.http.auth import Authenticator
from portico.pipeline.jinja_sandbox import syntax_error
from portico.storage.prompts import PromptLibrary
from portico.wire.prompts import PROMPT_ID, PromptCreate, PromptList, PromptPublic, PromptUpdate, check_prompt

PromptId = Annotated[str, Path(pattern=PROMPT_ID, description="The prompt's id.")]


def mount_prompts_admin(app: FastAPI, library: PromptLibrary, auth: Authenticator) -> None:
    router = admin_router(auth, "/v1/admin/prompts", "prompts")

    @router.post("", status_code=201, responses=error_responses(409))
    async def create_prompt(body: PromptCreate) -> PromptPublic:
        """Version 1 of a new prompt; 409 if the id exists."""
        _refuse_invalid(body)
        return PromptPublic.of(await library.create(body.draft(), body.id))

    @router.get("")
    async def list_prompts() -> PromptList:
        """The latest version of every prompt."""
        return PromptList(data=[PromptPublic.of(p) for p in library.latest()])

    @router.get("/{prompt_id}", responses=error_responses(404))
    async def get_prompt(prompt_id: PromptId) -> PromptPublic:
        prompt = library.get(prompt_id)
        if prompt is None:
            raise prompt_not_found(prompt_id)
        return PromptPublic.of(prompt)

    @router.put("/{prompt_id}", responses=error_responses(404))
    async def update_prompt(prompt_id: PromptId, body: PromptUpdate, response: Response) -> PromptPublic:
        """Replace the content: a new version, or (identical content) the latest one unchanged, said by
        `x-portico-prompt-changed: false`."""
        _refuse_invalid(body)
        prompt, changed = await library.update(prompt_id, body.draft())
        response.headers["x-portico-prompt-changed"] = "true" if changed else "false"
        return PromptPublic.of(prompt)

    @router.delete("/{prompt_id}", status_code=204, responses=error_responses(404))
    async def delete_prompt(prompt_id: PromptId) -> Response:
        """Removes the prompt and all its versions."""
        if not await library.delete(prompt_id):
            raise prompt_not_found(prompt_id)
        return Response(status_code=204)

    @router.get("/{prompt_id}/versions", responses=error_responses(404))
    async def list_versions(prompt_id: PromptId) -> PromptList:
        """Every version, oldest first."""
        history = library.versions(prompt_id)
        if history is None:
            raise prompt_not_found(prompt_id)
        return PromptList(data=[PromptPublic.of(p) for p in history])

    @router.get("/{prompt_id}/versions/{version}", responses=error_responses(404))
    async def get_version(prompt_id: PromptId, version: Annotated[int, Path(ge=1)]) -> PromptPublic:
        prompt = library.get(prompt_id, version)
        if prompt is None:
            raise prompt_not_found(prompt_id, version)
        return PromptPublic.of(prompt)

    app.include_router(router)


def _refuse_invalid(body: PromptUpdate) -> None:
    errors = check_prompt(body)
    if body.template_engine == "jinja":
        errors.extend(_template_syntax(body.messages, syntax_error))
    elif body.template_engine == "mustache":
        from portico.pipeline.mustache import syntax_error as mustache_error  # pystache: only for mustache prompts

        errors.extend(_template_syntax(body.messages, mustache_error))
    if errors:
        raise ValidationFailed(errors)


def _template_syntax(messages: list[dict[str, object]], syntax_error: Callable[[str], str | None]) -> list[FieldError]:
    """A template that cannot even be parsed is refused now, not on every request that uses it."""
    errors = []
    for i, message in enumerate(messages):
        content = message.get("content")
        texts = [content] if isinstance(content, str) else []
        if isinstance(content, list):
            texts = [p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
        for text in texts:
            if (problem := syntax_error(text)) is not None:
                errors.append(FieldError(("body", "messages", i, "content"), problem, "template_error"))
    return errors
