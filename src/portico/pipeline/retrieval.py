"""The retrieval stage: `knowledge_bases` queried after the variables are rendered, before guardrails and cache.

No knowledge base exists yet, so every id answers 404 `knowledge_base_not_found` rather than being silently
ignored; the knowledge-bases work replaces the lookup and keeps this stage's place in the list.
"""

from __future__ import annotations

from portico.core.errors import NotFound
from portico.core.types import ChatResult
from portico.pipeline.stages import Call, Stage


class RetrievalStage(Stage):
    name = "retrieval"
    triggers = ("knowledge_ids",)

    async def before(self, call: Call) -> ChatResult | None:
        knowledge_id = call.request.knowledge_ids[0]
        raise NotFound(
            f"Knowledge base '{knowledge_id}' not found.", code="knowledge_base_not_found", param="knowledge_bases"
        )
