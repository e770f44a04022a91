"""Answers rewritten by the guardrail stages: redacted PII restored (JSON and streams, placeholders split across
chunks included) and almost-JSON healed. A chunk that needs no change is passed on as it came (its raw frame).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from portico.core.errors import GuardrailViolation
from portico.core.types import ChatChunk, ChatResult
from portico.guardrails.healing import HealingFailed, heal_json
from portico.guardrails.redaction import Redactor, StreamRestorer
from portico.guardrails.registry import HEALING_ID
from portico.pipeline.stages import Chunks


def restore_body(body: dict[str, Any], redactor: Redactor) -> dict[str, Any]:
    return {**body, "choices": [_restore_choice(c, redactor) for c in body.get("choices") or ()]}


def _restore_choice(choice: Any, redactor: Redactor) -> Any:
    message = choice.get("message") if isinstance(choice, dict) else None
    if isinstance(message, dict) and isinstance(message.get("content"), str):
        return {**choice, "message": {**message, "content": redactor.restore(message["content"])}}
    return choice


async def restore_stream(chunks: Chunks, redactor: Redactor) -> AsyncIterator[list[ChatChunk]]:
    """Each choice's text passes through its own `StreamRestorer`; held text goes out with the finish reason."""
    restorers: dict[int, StreamRestorer] = {}
    async for batch in chunks:
        yield [_restore_chunk(chunk, restorers, redactor) for chunk in batch]
    tail = {i: r.flush() for i, r in restorers.items()}
    if any(tail.values()):
        choices = [{"index": i, "delta": {"content": text}, "finish_reason": None} for i, text in tail.items() if text]
        yield [ChatChunk({"object": "chat.completion.chunk", "choices": choices})]


def _restore_chunk(chunk: ChatChunk, restorers: dict[int, StreamRestorer], redactor: Redactor) -> ChatChunk:
    choices = chunk.data.get("choices")
    if not choices:
        return chunk
    rebuilt = []
    for choice in choices:
        index = choice.get("index", 0)
        delta = choice.get("delta") or {}
        piece = delta.get("content")
        restorer = restorers.get(index)
        if restorer is None:
            restorer = restorers[index] = redactor.restorer()
        if isinstance(piece, str):
            piece = restorer.feed(piece)
        if choice.get("finish_reason") and (rest := restorer.flush()):
            piece = (piece or "") + rest
        if piece is not None and piece != delta.get("content"):
            rebuilt.append({**choice, "delta": {**delta, "content": piece}})
        else:
            rebuilt.append(choice)
    if rebuilt == choices:
        return chunk
    return ChatChunk({**chunk.data, "choices": rebuilt})


def healed_result(result: ChatResult, schema: Any) -> ChatResult:
    """The answer with every choice's content as valid JSON (matching `schema` when one is given), or the error."""
    body = result.body
    choices = []
    changed = False
    for choice in body.get("choices") or ():
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            choices.append(choice)
            continue
        content = message["content"]
        text = healed_text(content, schema)
        changed = changed or text != content
        choices.append({**choice, "message": {**message, "content": text}} if text != content else choice)
    if not changed:
        return result
    healed = {**body, "choices": choices}
    return ChatResult(healed, None, result.provider, result.model, result.dropped_params, result.usage)


def healed_text(text: str, schema: Any) -> str:
    try:
        healed, value = heal_json(text)
    except HealingFailed as exc:
        raise GuardrailViolation(f"Guardrail '{HEALING_ID}' refused the answer: {exc}.", guardrail=HEALING_ID) from None
    if isinstance(schema, dict):
        import jsonschema  # only requests that ask for a schema pay for the import

        error = jsonschema.exceptions.best_match(jsonschema.validators.validator_for(schema)(schema).iter_errors(value))
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "the root"
            raise GuardrailViolation(
                f"Guardrail '{HEALING_ID}' refused the answer: it does not match the response_format schema at "
                f"{where}: {error.message}.",
                guardrail=HEALING_ID,
            )
    return healed


def response_schema(body: dict[str, Any]) -> Any:
    """The JSON schema `response_format` asks for, or None (json_object, or no response_format)."""
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
        return (response_format.get("json_schema") or {}).get("schema")
    return None


def healed_batches(held: list[list[ChatChunk]], texts: dict[int, str], schema: Any) -> list[list[ChatChunk]]:
    """A held stream whose choices' texts are healed: a choice whose text changed gets its whole healed text in its
    first content chunk and empty content in the rest; chunks of unchanged choices are passed on as they came."""
    healed = {index: healed_text(text, schema) for index, text in texts.items()}
    changed = {index for index, text in healed.items() if text != texts[index]}
    if not changed:
        return held
    sent: set[int] = set()
    return [[_healed_chunk(chunk, healed, changed, sent) for chunk in batch] for batch in held]


def _healed_chunk(chunk: ChatChunk, healed: dict[int, str], changed: set[int], sent: set[int]) -> ChatChunk:
    choices = chunk.data.get("choices")
    if not choices:
        return chunk
    rebuilt = []
    touched = False
    for choice in choices:
        index = choice.get("index", 0)
        delta = choice.get("delta") or {}
        if index in changed and isinstance(delta.get("content"), str):
            content = "" if index in sent else healed[index]
            sent.add(index)
            rebuilt.append({**choice, "delta": {**delta, "content": content}})
            touched = True
        else:
            rebuilt.append(choice)
    return ChatChunk({**chunk.data, "choices": rebuilt}) if touched else chunk
