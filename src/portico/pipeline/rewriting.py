"""Answers rewritten by the guardrail stages: redacted PII restored (text and tool-call arguments, JSON and
streams, placeholders split across chunks included) and almost-JSON healed. A chunk that needs no change is
passed on as it came (its raw frame).
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
    if not isinstance(message, dict):
        return choice
    restored = message
    if isinstance(message.get("content"), str):
        restored = {**restored, "content": redactor.restore(message["content"])}
    calls = message.get("tool_calls")
    if isinstance(calls, list) and calls:
        restored = {**restored, "tool_calls": [_restore_call(c, redactor) for c in calls]}
    return choice if restored is message else {**choice, "message": restored}


def _restore_call(call: Any, redactor: Redactor) -> Any:
    function = call.get("function") if isinstance(call, dict) else None
    if isinstance(function, dict) and isinstance(function.get("arguments"), str):
        return {**call, "function": {**function, "arguments": redactor.restore(function["arguments"])}}
    return call


Restorers = dict[tuple[int, int], StreamRestorer]
"""One per choice's text (key (choice, -1)) and per tool call's arguments (key (choice, tool call index))."""


async def restore_stream(chunks: Chunks, redactor: Redactor) -> AsyncIterator[list[ChatChunk]]:
    """Each choice's text and each tool call's arguments pass through their own `StreamRestorer`; held text goes
    out with the finish reason (or, when a stream ends without one, in a last chunk)."""
    restorers: Restorers = {}
    async for batch in chunks:
        yield [_restore_chunk(chunk, restorers, redactor) for chunk in batch]
    tail = {key: text for key, r in restorers.items() if (text := r.flush())}
    if tail:
        indexes = sorted({i for i, _ in tail})
        choices = [{"index": i, "delta": _tail_delta(i, tail), "finish_reason": None} for i in indexes]
        yield [ChatChunk({"object": "chat.completion.chunk", "choices": choices})]


def _tail_delta(index: int, tail: dict[tuple[int, int], str]) -> dict[str, Any]:
    delta: dict[str, Any] = {}
    if (index, -1) in tail:
        delta["content"] = tail[(index, -1)]
    calls = [{"index": c, "function": {"arguments": t}} for (i, c), t in sorted(tail.items()) if i == index and c >= 0]
    if calls:
        delta["tool_calls"] = calls
    return delta


def _restore_chunk(chunk: ChatChunk, restorers: Restorers, redactor: Redactor) -> ChatChunk:
    choices = chunk.data.get("choices")
    if not choices:
        return chunk
    rebuilt = []
    for choice in choices:
        index = choice.get("index", 0)
        delta = choice.get("delta") or {}
        finished = bool(choice.get("finish_reason"))
        new_delta = delta
        piece = _restored_piece(delta.get("content"), (index, -1), restorers, redactor)
        if piece != delta.get("content"):
            new_delta = {**new_delta, "content": piece}
        calls = delta.get("tool_calls")
        if isinstance(calls, list) and calls:
            restored_calls = [_restore_call_delta(c, index, restorers, redactor) for c in calls]
            if restored_calls != calls:
                new_delta = {**new_delta, "tool_calls": restored_calls}
        if finished:
            new_delta = _flushed(new_delta, index, restorers)
        rebuilt.append(choice if new_delta is delta else {**choice, "delta": new_delta})
    if rebuilt == choices:
        return chunk
    return ChatChunk({**chunk.data, "choices": rebuilt})


def _restored_piece(piece: Any, key: tuple[int, int], restorers: Restorers, redactor: Redactor) -> Any:
    if not isinstance(piece, str):
        return piece
    restorer = restorers.get(key)
    if restorer is None:
        restorer = restorers[key] = redactor.restorer()
    return restorer.feed(piece)


def _restore_call_delta(call: Any, index: int, restorers: Restorers, redactor: Redactor) -> Any:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("arguments"), str):
        return call
    key = (index, int(call.get("index", 0)))
    restored = _restored_piece(function["arguments"], key, restorers, redactor)
    return call if restored == function["arguments"] else {**call, "function": {**function, "arguments": restored}}


def _flushed(delta: dict[str, Any], index: int, restorers: Restorers) -> dict[str, Any]:
    """The delta of a finishing choice with every text its restorers still hold appended."""
    text = restorers[(index, -1)].flush() if (index, -1) in restorers else ""
    if text:
        delta = {**delta, "content": (delta.get("content") or "") + text}
    held = {c: r.flush() for (i, c), r in restorers.items() if i == index and c >= 0}
    calls = [{"index": c, "function": {"arguments": t}} for c, t in sorted(held.items()) if t]
    if calls:
        delta = {**delta, "tool_calls": [*(delta.get("tool_calls") or []), *calls]}
    return delta


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
