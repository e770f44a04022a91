"""Admin schemas of stored prompts (`PromptCreate`, `PromptUpdate`, `PromptPublic`) and the checks a body must pass
before it is stored: its messages, tools and response_format as the chat schema types them, and parameters that
are model parameters (never gateway fields, which would leak upstream). Every refusal names the body path.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

import msgspec
from pydantic import BaseModel, ConfigDict, Field

from portico.core.errors import FieldError
from portico.core.prompts import PromptDraft, StoredPrompt
from portico.wire.convert import field_error
from portico.wire.openai_chat import GATEWAY_FIELDS, ChatCompletionRequest

PROMPT_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
_SEPARATE = frozenset({"messages", "tools", "response_format", "stream_options"})
"""Keys that are fields of their own (or only make sense per request), so not `parameters`."""


class PromptUpdate(BaseModel):
    """A prompt's whole content; `PUT` replaces the latest version's content with it (a new version, unless equal)."""

    model_config = ConfigDict(extra="forbid")

    messages: list[dict[str, Any]] = Field(
        min_length=1,
        description="Chat messages; text may hold `{{variables}}`. They come before the request's own messages.",
    )
    model: str | None = Field(None, description="Default model; a request's `model` wins.")
    parameters: dict[str, Any] = Field(
        default_factory=dict,
        description="Default model parameters (temperature, max_tokens, ...); the request's fields override them.",
    )
    tools: list[dict[str, Any]] | None = Field(None, description="Used unless the request sets `tools`.")
    response_format: dict[str, Any] | None = Field(None, description="Used unless the request sets one.")
    template_engine: Literal["text", "jinja", "mustache"] = Field(
        "text", description="How `{{variables}}` render, unless the request names an engine."
    )
    variables: dict[str, Any] = Field(default_factory=dict, description="Variable defaults; the request's win.")
    description: str = Field("", max_length=2000)
    tags: list[str] = Field(default_factory=list, max_length=64)

    def draft(self) -> PromptDraft:
        return PromptDraft(
            messages=tuple(self.messages),
            model=self.model,
            parameters=self.parameters,
            tools=tuple(self.tools) if self.tools is not None else None,
            response_format=self.response_format,
            template_engine=self.template_engine,
            variables=self.variables,
            description=self.description,
            tags=tuple(self.tags),
        )


class PromptCreate(PromptUpdate):
    id: str | None = Field(None, pattern=PROMPT_ID, description="Client-chosen key; default: generated (prompt_…).")


class PromptPublic(BaseModel):
    id: str
    version: int = Field(description="This version's number: 1 for the first, +1 for every change.")
    messages: list[dict[str, Any]]
    model: str | None
    parameters: dict[str, Any]
    tools: list[dict[str, Any]] | None
    response_format: dict[str, Any] | None
    template_engine: str
    variables: dict[str, Any]
    description: str
    tags: list[str]
    created_at: str = Field(description="When this version was written (ISO 8601, UTC).")
    content_hash: str = Field(description="SHA-256 of the content: equal hashes, equal content.")

    @classmethod
    def of(cls, prompt: StoredPrompt) -> PromptPublic:
        return cls(
            id=prompt.id,
            version=prompt.version,
            created_at=datetime.fromtimestamp(prompt.created_at, UTC).isoformat(),
            content_hash=prompt.content_hash,
            **prompt.draft().content(),
        )


class PromptList(BaseModel):
    data: list[PromptPublic]


def check_prompt(body: PromptUpdate) -> list[FieldError]:
    """What the pydantic model cannot see: the chat schema's rules for messages, tools, response_format and
    parameters. Empty when the prompt can be stored."""
    errors: list[FieldError] = []
    try:
        shaped = {"messages": body.messages, "tools": body.tools, "response_format": body.response_format}
        msgspec.convert({k: v for k, v in shaped.items() if v is not None}, ChatCompletionRequest)
    except msgspec.ValidationError as exc:
        errors.append(field_error(exc))
    bad = sorted((GATEWAY_FIELDS | _SEPARATE).intersection(body.parameters))
    for key in bad:
        errors.append(FieldError(("body", "parameters", key), f"'{key}' is not a model parameter", "value_error"))
    if not bad:
        try:
            msgspec.convert({"messages": [], **body.parameters}, ChatCompletionRequest)
        except msgspec.ValidationError as exc:
            found = field_error(exc)
            errors.append(FieldError(("body", "parameters", *found.loc[1:]), found.msg, found.type))
    return errors
