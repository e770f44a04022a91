"""The stored-prompt stage: `prompt {id, version}` (and deprecated `orq.prompt`) resolved before anything else.

No prompt store exists yet, so every id answers 404 `prompt_not_found` rather than being silently ignored; the
prompts-and-deployments work replaces the lookup and keeps this stage's place, first in the list.
"""

from __future__ import annotations

from portico.core.errors import NotFound
from portico.core.types import ChatRequest, ChatResult
from portico.pipeline.stages import Call, Stage


class PromptStage(Stage):
    name = "prompt"

    def active(self, request: ChatRequest) -> bool:
        return request.prompt_id is not None

    async def before(self, call: Call) -> ChatResult | None:
        prompt_id = call.request.prompt_id
        raise NotFound(f"Prompt '{prompt_id}' not found.", code="prompt_not_found", param="prompt.id")
