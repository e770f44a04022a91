"""What the retrieval stage does with messages: find the question, ask a model to rewrite it (agentic RAG), and put
the retrieved chunks where the model reads them (CHECKLIST AMB-44). Pure functions over OpenAI-shaped messages.

Injection, per knowledge base of the request:
- a message (string content or a text part) containing `{{<knowledge_id>}}` (spaces inside the braces allowed)
  gets the base's chunk texts there, joined by a blank line, in rank order; no chunk found → the empty string.
  Rendering runs before retrieval and the `text` engine leaves unknown names verbatim, so the placeholder survives
  it; `jinja` and `mustache` render unknown names empty, so with jinja write `{{ '{{kb}}' }}`, with mustache
  `{{=<% %>=}}{{kb}}`, or use the system message.
- a base no message names goes into one system message, inserted after the leading system/developer messages and
  before the first user/assistant turn: the client's own instructions stay first (several providers treat only
  the first system text as the instructions, and Anthropic/Gemini merge the system messages in order), and the
  context sits next to the conversation it serves. A base that found nothing adds nothing; nothing found at all →
  no message (the request goes out as sent).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from portico.core.knowledge import Retrieval
from portico.core.types import ChatResult, JSONObject

CONTEXT_HEADER = (
    "Answer using the following context retrieved from the knowledge base. "
    "If the context does not contain the answer, say so."
)
"""The first line of the injected system message (the README quotes it)."""

REWRITE_INSTRUCTIONS = (
    "You rewrite the user's last message into one standalone search query for a knowledge base. Use the "
    "conversation below to resolve references (pronouns, 'it', 'that one'). Answer with the query only, no "
    "quotes and no explanation."
)
_REWRITE_TURNS = 20
"""The last turns of the conversation the rewriting model sees: enough for references, bounded in cost."""
_LEADING = ("system", "developer")


def message_text(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def last_user_text(messages: Sequence[Any]) -> str:
    """The question a base is searched with when its entry gives no `query` (RQ-KB-09): the last user message's
    text; when no user message has text (a deployment invoked with only its own prompt), the last message that
    has some, so that the base is still searched (and an unknown one still a 404) rather than silently skipped."""
    fallback = ""
    for message in reversed(messages):
        if isinstance(message, dict):
            text = message_text(message)
            if message.get("role") == "user" and text:
                return text
            fallback = fallback or text
    return fallback


def rewrite_messages(messages: Sequence[Any], question: str) -> list[JSONObject]:
    """The agentic RAG call (RQ-KB-08): instructions and the recent conversation as one system message, the
    question as the user message, so that any chat model can answer it."""
    turns = [
        f"{m.get('role')}: {message_text(m)}"
        for m in messages[-_REWRITE_TURNS:]
        if isinstance(m, dict) and m.get("role") in ("user", "assistant") and message_text(m)
    ]
    system = REWRITE_INSTRUCTIONS + "\n\nConversation:\n" + "\n".join(turns)
    return [{"role": "system", "content": system}, {"role": "user", "content": question}]


def rewritten_query(result: ChatResult, fallback: str) -> str:
    """The rewriting model's answer (its first choice's text, stripped of quotes); the question when it is empty."""
    for choice in result.body.get("choices") or ():
        content = (choice.get("message") or {}).get("content") if isinstance(choice, dict) else None
        if isinstance(content, str) and content.strip():
            return content.strip().strip("\"'").strip() or fallback
    return fallback


def _placeholder(knowledge_id: str) -> re.Pattern[str]:
    return re.compile(r"\{\{\s*" + re.escape(knowledge_id) + r"\s*\}\}")


def inject(messages: Sequence[Any], found: Iterable[tuple[str, Sequence[Retrieval]]]) -> list[Any]:
    """`messages` with each base's chunks in its placeholder, or in the context system message (module docstring).
    The input list and its messages are not changed: changed messages are copies."""
    out = list(messages)
    unplaced: list[tuple[str, Sequence[Retrieval]]] = []
    for knowledge_id, chunks in found:
        pattern = _placeholder(knowledge_id)
        joined = "\n\n".join(chunk.text for chunk in chunks)
        placed = False
        for index, message in enumerate(out):
            if isinstance(message, dict) and "{{" in message_text(message):
                replaced = _substituted(message, pattern, joined)
                if replaced is not message:
                    out[index], placed = replaced, True
        if not placed and chunks:
            unplaced.append((knowledge_id, chunks))
    if unplaced:
        lead = 0
        while lead < len(out) and isinstance(out[lead], dict) and out[lead].get("role") in _LEADING:
            lead += 1
        out.insert(lead, {"role": "system", "content": context_message(unplaced)})
    return out


def context_message(found: Sequence[tuple[str, Sequence[Retrieval]]]) -> str:
    sections = [CONTEXT_HEADER]
    for knowledge_id, chunks in found:
        body = "\n\n".join(chunk.text for chunk in chunks)
        sections.append(f'<context knowledge_base="{knowledge_id}">\n{body}\n</context>')
    return "\n\n".join(sections)


def _substituted(message: JSONObject, pattern: re.Pattern[str], text: str) -> JSONObject:
    """The message with the placeholder replaced, or the same object when it has none."""
    content = message.get("content")

    def replace(value: str) -> str:
        return pattern.sub(lambda _: text, value)  # a function: chunk text is not a replacement template

    if isinstance(content, str):
        if pattern.search(content) is None:
            return message
        return {**message, "content": replace(content)}
    if isinstance(content, list):
        hit = False
        parts = []
        for part in content:
            value = part.get("text") if isinstance(part, dict) and part.get("type") == "text" else None
            if isinstance(value, str) and pattern.search(value) is not None:
                parts.append({**part, "text": replace(value)})
                hit = True
            else:
                parts.append(part)
        return {**message, "content": parts} if hit else message
    return message


def record_of(retrievals: Sequence[Retrieval]) -> list[JSONObject]:
    """What the call record keeps of the retrievals: ids and scores, and a short preview of each chunk's text."""
    return [
        {
            "knowledge_id": r.knowledge_id,
            "chunk_id": r.chunk_id,
            "datasource_id": r.datasource_id,
            "search_score": r.search_score,
            "rerank_score": r.rerank_score,
            "preview": r.text[:PREVIEW_CHARS],
        }
        for r in retrievals
    ]


PREVIEW_CHARS = 80
