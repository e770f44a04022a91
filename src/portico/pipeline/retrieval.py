"""The retrieval stage: `knowledge_bases` searched after the variables are rendered, before guardrails and cache.

For each entry (CHECKLIST BEH-KB-01..04), in request order:
1. its `filter_by` is checked against the filter grammar first, for every entry, so that a malformed filter is a 422
   naming its path (`body.knowledge_bases.0.filter_by.year.gt`) before anything is spent;
2. the query is the entry's `query`, else the last user message's text (`retrieval_context.last_user_text`);
3. with `agentic_rag_config.model`, that model first rewrites the query from the conversation: one chat call
   through the routed call (retries, fallbacks of the model address, the provider's credentials), appended to the
   request's attempts like any other, so the call log shows it (`retrieval_context.rewrite_messages`);
4. the base is searched (`core.knowledge.KnowledgeSearch`; unknown base → 404 `knowledge_base_not_found`; an
   embedding model that fails fails the request with the upstream's error);
5. the chunks are put into the messages (`retrieval_context.inject`: the `{{knowledge_id}}` placeholder, else one
   system message after the leading system messages).

What was found is kept on `Served.retrievals`: the deployment answer's `retrievals` and the call record read it.
Without a knowledge service wired (`Gateway.use_knowledge`), every id answers 404 rather than being ignored. A
request without `knowledge_bases` never reaches this stage: its trigger is an empty tuple, read with the others in
one `attrgetter` call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace

from portico.core.errors import NotFound
from portico.core.knowledge import KnowledgeSearch, Retrieval
from portico.core.types import ChatRequest, ChatResult, KnowledgeLookup
from portico.pipeline.retrieval_context import inject, last_user_text, rewrite_messages, rewritten_query
from portico.pipeline.served import Served
from portico.pipeline.stages import Call, Stage

Complete = Callable[[ChatRequest, Served], Awaitable[ChatResult]]


class RetrievalStage(Stage):
    name = "retrieval"
    triggers = ("knowledge",)

    def __init__(self, complete: Complete | None = None, search: KnowledgeSearch | None = None) -> None:
        self.complete = complete
        """The routed call, for the agentic rewrite (None: a rewrite is asked for and cannot run → 400)."""
        self.search = search

    async def before(self, call: Call) -> ChatResult | None:
        request = call.request
        lookups = request.knowledge
        check_filters(lookups)
        search = self.search
        if search is None:
            raise _not_found(lookups[0].knowledge_id)
        messages = request.body.get("messages") or []
        question = last_user_text(messages)
        found: list[tuple[str, Sequence[Retrieval]]] = []
        retrievals: list[Retrieval] = []
        for lookup in lookups:
            text = lookup.search.text or question
            model = lookup.search.agentic_model
            if model is not None and text:
                text = await self._rewrite(call, model, messages, text)
            chunks = await search.search(lookup.knowledge_id, replace(lookup.search, text=text)) if text else []
            found.append((lookup.knowledge_id, chunks))
            retrievals.extend(chunks)
        call.served.retrievals = retrievals
        call.request = replace(request, body={**request.body, "messages": inject(messages, found)})
        return None

    async def _rewrite(self, call: Call, model: str, messages: list[object], question: str) -> str:
        """One chat call to `model`; the answer is the query. The call is an attempt of this request (it shows in
        the call record and the trace), but it does not name what served the request: that stays the main call."""
        if self.complete is None:
            return question
        request = call.request
        rewrite = ChatRequest(
            model,
            {"messages": rewrite_messages(messages, question)},
            dialect=request.dialect,
            trace=request.trace,
            client_key=request.client_key,
        )
        served = call.served
        provider, served_model, option = served.provider, served.model, served.option_index
        try:
            result = await self.complete(rewrite, served)
        finally:
            served.provider, served.model, served.option_index = provider, served_model, option
        return rewritten_query(result, question)


def check_filters(lookups: Sequence[KnowledgeLookup]) -> None:
    """Every entry's `filter_by` against the grammar (422 naming the path of the bad part)."""
    for lookup in lookups:
        if lookup.search.filter is not None:
            from portico.knowledge.filters import parse_filter  # the grammar, loaded by the requests that filter

            parse_filter(lookup.search.filter, path=(*lookup.at, "filter_by"))


def _not_found(knowledge_id: str) -> NotFound:
    return NotFound(
        f"Knowledge base '{knowledge_id}' not found.", code="knowledge_base_not_found", param="knowledge_bases"
    )
