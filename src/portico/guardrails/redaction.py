"""Reversible PII redaction: detected values become stable placeholders (`[EMAIL_1]`) before the model sees the
request (message text, tool results and tool-call arguments), and the answer gets the originals back, its tool
calls and streamed answers included (a placeholder split across chunks is held back until it is complete).

The same value always gets the same placeholder within a request, so the model can refer to it consistently and
an identical request maps to an identical redacted body (a cache hit never holds PII).
"""

from __future__ import annotations

import re
from typing import Any

from portico.guardrails.pii import ENTITIES, Entity, find_pii

_PLACEHOLDER = re.compile(r"\[[A-Z_]+_\d+\]")
_PARTIAL = re.compile(r"\[[A-Z_]*\d*$")
_MAX_PLACEHOLDER = 24


class Redactor:
    """The placeholders of one request: `redact` fills them, `restore` / `restorer` put the originals back."""

    __slots__ = ("by_placeholder", "by_value", "counts", "entities")

    def __init__(self, entities: tuple[Entity, ...] = ENTITIES) -> None:
        self.entities = entities
        self.by_value: dict[str, str] = {}
        self.by_placeholder: dict[str, str] = {}
        self.counts: dict[str, int] = {}

    def redact(self, text: str) -> str:
        spans = find_pii(text, self.entities)
        if not spans:
            return text
        out: list[str] = []
        last = 0
        for span in spans:
            out.append(text[last : span.start])
            out.append(self._placeholder(text[span.start : span.end], span.kind))
            last = span.end
        out.append(text[last:])
        return "".join(out)

    def _placeholder(self, value: str, kind: str) -> str:
        found = self.by_value.get(value)
        if found is None:
            number = self.counts[kind] = self.counts.get(kind, 0) + 1
            found = f"[{kind.upper()}_{number}]"
            self.by_value[value] = found
            self.by_placeholder[found] = value
        return found

    def redact_messages(self, messages: list[Any]) -> list[Any]:
        """A copy of the chat messages with every text content redacted; the input is left untouched."""
        return [self._redact_message(m) if isinstance(m, dict) else m for m in messages]

    def _redact_message(self, message: dict[str, Any]) -> dict[str, Any]:
        """Text content (a tool result's too) and the JSON text of tool-call arguments: a placeholder holds no
        character JSON escapes, so redacted arguments stay valid JSON."""
        content = message.get("content")
        if isinstance(content, str):
            message = {**message, "content": self.redact(content)}
        elif isinstance(content, list):
            message = {**message, "content": [self._redact_part(p) for p in content]}
        calls = message.get("tool_calls")
        if isinstance(calls, list) and calls:
            message = {**message, "tool_calls": [self._redact_call(c) for c in calls]}
        return message

    def _redact_call(self, call: Any) -> Any:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict) and isinstance(function.get("arguments"), str):
            return {**call, "function": {**function, "arguments": self.redact(function["arguments"])}}
        return call

    def _redact_part(self, part: Any) -> Any:
        if isinstance(part, dict) and isinstance(part.get("text"), str):
            return {**part, "text": self.redact(part["text"])}
        return part

    def restore(self, text: str) -> str:
        if not self.by_placeholder or "[" not in text:
            return text
        return _PLACEHOLDER.sub(lambda m: self.by_placeholder.get(m.group(), m.group()), text)

    def restorer(self) -> StreamRestorer:
        return StreamRestorer(self)


class StreamRestorer:
    """Restores one stream of text pieces (one choice): `feed` returns what can be sent now, `flush` the rest."""

    __slots__ = ("held", "redactor")

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor
        self.held = ""

    def feed(self, piece: str) -> str:
        text = self.held + piece
        start = text.rfind("[")
        if start != -1 and len(text) - start <= _MAX_PLACEHOLDER and _PARTIAL.match(text, start):
            self.held = text[start:]
            text = text[:start]
        else:
            self.held = ""
        return self.redactor.restore(text)

    def flush(self) -> str:
        text, self.held = self.held, ""
        return self.redactor.restore(text)
