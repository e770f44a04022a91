"""The stored-prompt stage: `prompt {id, version}` (and deprecated `orq.prompt`) resolved before anything else.

`merge_prompt` is the one definition of how a stored prompt and a request combine (CHECKLIST AMB-10), shared with
deployments: the prompt's messages first, then the request's; the request's fields override the prompt's
parameters, tools and response_format; its variables override the prompt's defaults. The stage renders the
merged messages once, here, so the variables stage is skipped and a variable's value is never rendered twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import orjson

from portico.core.prompts import StoredPrompt, Version, prompt_not_found
from portico.core.types import ChatRequest, ChatResult, JSONObject
from portico.pipeline.stages import Call, Stage
from portico.pipeline.templating import render_messages

PromptLookup = Callable[[str, Version], StoredPrompt | None]
"""A synchronous, in-memory lookup (`PromptLibrary.get`): the request path does no I/O for a prompt."""


def merge_prompt(prompt: StoredPrompt, request: ChatRequest) -> ChatRequest:
    """The request as if its sender had written the prompt's content into it; pure (nothing stored is shared
    with the result, so later stages and providers may change the body freely)."""
    defaults: JSONObject = dict(prompt.parameters)
    if prompt.tools is not None:
        defaults["tools"] = list(prompt.tools)
    if prompt.response_format is not None:
        defaults["response_format"] = prompt.response_format
    defaults["messages"] = list(prompt.messages)
    body: JSONObject = orjson.loads(orjson.dumps(defaults))
    stored_messages = body["messages"]
    for key, value in request.body.items():
        if value is not None:
            body[key] = value
    body["messages"] = stored_messages + list(request.body.get("messages") or ())
    variables: dict[str, Any] = {**prompt.variables, **(request.variables or {})}
    return replace(
        request,
        model=request.model or prompt.model or "",
        body=body,
        variables=variables or None,
        template_engine=request.template_engine or prompt.template_engine,
    )


class PromptStage(Stage):
    """Without a prompt store (`lookup=None`) every id answers 404 rather than being silently ignored."""

    name = "prompt"
    triggers = ("prompt_id",)  # never empty when set: the wire schema refuses an empty id

    def __init__(self, lookup: PromptLookup | None = None) -> None:
        self.lookup = lookup

    async def before(self, call: Call) -> ChatResult | None:
        request = call.request
        assert request.prompt_id is not None
        prompt = self.lookup(request.prompt_id, request.prompt_version) if self.lookup is not None else None
        if prompt is None:
            raise prompt_not_found(request.prompt_id, request.prompt_version)
        merged = merge_prompt(prompt, request)
        engine = merged.template_engine or "text"
        if merged.variables or engine != "text":  # Jinja logic renders even with no variables
            merged.body = render_messages(merged.body, merged.variables or {}, engine)
            merged.variables = None
        call.request = merged
        return None
