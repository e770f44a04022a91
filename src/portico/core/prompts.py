"""A stored prompt: one immutable version of its messages, defaults and templating (`StoredPrompt`).

Versions never change once written; an update is a new version. `content_hash` covers everything but the id,
version and creation time, so an update that changes nothing is recognised and makes no new version.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from portico.core.errors import NotFound
from portico.core.types import JSONObject

TemplateEngine = Literal["text", "jinja", "mustache"]
Version = int | Literal["latest"]


def prompt_not_found(prompt_id: str, version: Version = "latest") -> NotFound:
    """The 404 for an unknown prompt id or version, naming it."""
    what = f"Prompt '{prompt_id}'" if version == "latest" else f"Version {version} of prompt '{prompt_id}'"
    return NotFound(f"{what} not found.", code="prompt_not_found", param="prompt.id")


@dataclass(frozen=True, slots=True)
class PromptDraft:
    """What a client writes; a version is a draft plus its id, number and time."""

    messages: tuple[JSONObject, ...]
    model: str | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)
    tools: tuple[JSONObject, ...] | None = None
    response_format: JSONObject | None = None
    template_engine: TemplateEngine = "text"
    variables: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    tags: tuple[str, ...] = ()

    def content(self) -> JSONObject:
        return {
            "messages": list(self.messages),
            "model": self.model,
            "parameters": dict(self.parameters),
            "tools": list(self.tools) if self.tools is not None else None,
            "response_format": self.response_format,
            "template_engine": self.template_engine,
            "variables": dict(self.variables),
            "description": self.description,
            "tags": list(self.tags),
        }

    def content_hash(self) -> str:
        canonical = orjson.dumps(self.content(), option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(canonical).hexdigest()

    @classmethod
    def from_content(cls, content: Mapping[str, Any]) -> PromptDraft:
        tools = content.get("tools")
        return cls(
            messages=tuple(content.get("messages") or ()),
            model=content.get("model"),
            parameters=dict(content.get("parameters") or {}),
            tools=tuple(tools) if tools is not None else None,
            response_format=content.get("response_format"),
            template_engine=content.get("template_engine") or "text",
            variables=dict(content.get("variables") or {}),
            description=content.get("description") or "",
            tags=tuple(content.get("tags") or ()),
        )


@dataclass(frozen=True, slots=True)
class StoredPrompt:
    """One version of a prompt, as the request path and the admin API see it."""

    id: str
    version: int
    messages: tuple[JSONObject, ...]
    model: str | None
    parameters: Mapping[str, Any]
    tools: tuple[JSONObject, ...] | None
    response_format: JSONObject | None
    template_engine: TemplateEngine
    variables: Mapping[str, Any]
    description: str
    tags: tuple[str, ...]
    created_at: float
    content_hash: str

    @classmethod
    def of(cls, prompt_id: str, version: int, draft: PromptDraft, created_at: float) -> StoredPrompt:
        return cls(
            prompt_id,
            version,
            draft.messages,
            draft.model,
            draft.parameters,
            draft.tools,
            draft.response_format,
            draft.template_engine,
            draft.variables,
            draft.description,
            draft.tags,
            created_at,
            draft.content_hash(),
        )

    def draft(self) -> PromptDraft:
        return PromptDraft(
            self.messages,
            self.model,
            self.parameters,
            self.tools,
            self.response_format,
            self.template_engine,
            self.variables,
            self.description,
            self.tags,
        )
