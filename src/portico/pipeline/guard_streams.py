"""Streams the guardrail stages rewrite: an answer held back whole and checked (`checked_stream`, with `on_fail:
retry` asking the model once more), and Portkey's `hook_results` frames (`portkey_stream`).

Portkey's placement (its `streamHandler.ts`, and its guide to streaming output guardrails), sent only when the
client turned strict OpenAI compliance off (`x-portkey-strict-open-ai-compliance: false`): the before-request
hook results are the first frame, `data: {"hook_results": {"before_request_hooks": [...]}}`, ahead of the model's
chunks; after-request hooks run on the whole answer once it has been relayed and only report (a streamed answer
is never held back or denied for them), in one last frame `{"hook_results": {"after_request_hooks": [...]}}`.
That frame goes just before `[DONE]`, not after it as Portkey's guide words it: every OpenAI-based SDK, the
`portkey-ai` one included, stops reading at `[DONE]`, and the guide's own client reads the frame from the SDK.
A before-request hook that failed without denying makes the stream's status 246, as for a JSON answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace

from portico.cache.replay import chunks_from_completion
from portico.core.errors import GuardrailViolation
from portico.core.types import ChatChunk, ChatRequest, ChatResult
from portico.pipeline.guard_checks import GuardPlan, refuse, run_checks
from portico.pipeline.rewriting import healed_batches, response_schema
from portico.pipeline.served import Served
from portico.pipeline.stages import Call, Chunks

Again = Callable[[ChatRequest, Served], Awaitable[ChatResult]]
Checked = Callable[[Call, ChatResult], Awaitable[ChatResult]]
"""`guarding.checked_result`: heal and check a JSON answer (passed in: that module imports this one)."""
Texts = dict[int, list[str]]


def add_text(texts: Texts, batch: list[ChatChunk]) -> None:
    """Append each choice's content pieces of one batch to `texts`, by choice index."""
    for chunk in batch:
        for choice in chunk.data.get("choices") or ():
            piece = (choice.get("delta") or {}).get("content")
            if isinstance(piece, str):
                texts.setdefault(choice.get("index", 0), []).append(piece)


def joined(texts: Texts) -> str:
    return "\n".join("".join(parts) for _, parts in sorted(texts.items()))


async def checked_stream(
    call: Call, chunks: Chunks, again: Again | None = None, checked: Checked | None = None
) -> AsyncIterator[list[ChatChunk]]:
    """The whole stream is held back, then checked: nothing of a refused answer reaches the client. A refusal by
    a guardrail stored with `on_fail: retry` asks the model once more, without streaming (the new answer must be
    checked whole before any of it is sent), and sends that answer as chunks."""
    plan: GuardPlan = call.guard
    held = [batch async for batch in chunks]
    texts: Texts = {}
    for batch in held:
        add_text(texts, batch)
    whole = {index: "".join(parts) for index, parts in sorted(texts.items())}
    try:
        if plan.heal:
            held = healed_batches(held, whole, response_schema(call.request.body))
        failed = await run_checks(plan, plan.outputs, "\n".join(whole.values()), call.request)
        if (error := refuse(plan, failed)) is not None:
            raise error
    except GuardrailViolation as refused:
        if again is None or checked is None or not any(u.retry and u.id == refused.code for u in plan.outputs):
            raise
        result = await checked(call, await again(replace(call.request, stream=False), call.served))
        held = [[ChatChunk(c) for c in chunks_from_completion(result.body, call.request.include_usage)]]
    for batch in held:
        yield batch


async def collected(chunks: Chunks, texts: Texts) -> AsyncIterator[list[ChatChunk]]:
    """The stream unchanged, its text gathered into `texts` on the way (for checks once it has been sent)."""
    async for batch in chunks:
        add_text(texts, batch)
        yield batch


def needs_frames(plan: GuardPlan) -> bool:
    return bool(plan.stream_hooks) or (plan.frames and bool(plan.hook_results["before_request_hooks"]))


async def portkey_stream(call: Call, chunks: Chunks, texts: Texts) -> AsyncIterator[list[ChatChunk]]:
    """Portkey's hook frames around the relayed stream; `texts` is the answer as the model sent it (filled by
    `collected` below any PII restoring), read once the stream has ended."""
    plan: GuardPlan = call.guard
    before = plan.hook_results["before_request_hooks"]
    if plan.frames and before:
        yield [ChatChunk({"hook_results": {"before_request_hooks": before}})]
    async for batch in chunks:
        yield batch
    if plan.stream_hooks:
        await run_checks(plan, plan.stream_hooks, joined(texts), call.request)  # recorded; reports only
        if plan.frames:
            yield [ChatChunk({"hook_results": {"after_request_hooks": plan.hook_results["after_request_hooks"]}})]
