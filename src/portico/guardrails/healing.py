"""Response healing for answers asked to be JSON: repair almost-JSON only when the repair is unambiguous.

Repaired: a single Markdown code fence around the JSON (with or without prose outside it), trailing commas before
`}` / `]`, and an answer cut off right after a complete string, literal or container (the open brackets are
closed). Not repaired (`HealingFailed` says why): anything else, in particular a cut inside a string or a number,
or after a key: there the missing text cannot be known.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

_FENCE = re.compile(r"```(?:json|JSON)?[ \t]*\n?(.*?)\n?```", re.DOTALL)


class HealingFailed(ValueError):
    """The text is not JSON and no unambiguous repair makes it JSON; the message says what is wrong."""


def heal_json(text: str) -> tuple[str, Any]:
    """(JSON text, decoded value): `text` itself when it already parses, else its repair."""
    try:
        return text, orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        first_error = str(exc)
    candidate = _unfenced(text.strip())
    candidate = _without_trailing_commas(candidate)
    candidate = _closed(candidate)
    try:
        return candidate, orjson.loads(candidate)
    except orjson.JSONDecodeError:
        raise HealingFailed(
            f"the answer is not valid JSON ({first_error}) and cannot be repaired unambiguously"
        ) from None


def _unfenced(text: str) -> str:
    fences = _FENCE.findall(text)
    if len(fences) == 1:
        return str(fences[0]).strip()
    if len(fences) > 1:
        raise HealingFailed("the answer holds several code blocks; which one is the JSON is ambiguous")
    if text.startswith("```"):  # an opening fence whose closing one was cut off
        return text.split("\n", 1)[1] if "\n" in text else ""
    return text


def _scan(text: str) -> tuple[list[str], bool, list[int]]:
    """The open brackets, whether the text ends inside a string, and the positions of trailing commas."""
    stack: list[str] = []
    in_string = escaped = False
    commas: list[int] = []
    last_comma = -1
    for index, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if char == '"':
            in_string, last_comma = True, -1
        elif char in "{[":
            stack.append("}" if char == "{" else "]")
            last_comma = -1
        elif char in "}]":
            if last_comma >= 0:
                commas.append(last_comma)
            if stack:
                stack.pop()
            last_comma = -1
        elif char == ",":
            last_comma = index
        elif not char.isspace():
            last_comma = -1
    return stack, in_string, commas


def _without_trailing_commas(text: str) -> str:
    _, _, commas = _scan(text)
    for position in reversed(commas):
        text = text[:position] + text[position + 1 :]
    return text


def _closed(text: str) -> str:
    stack, in_string, _ = _scan(text)
    if not stack:
        return text
    if in_string:
        raise HealingFailed("the answer was cut off inside a string")
    body = text.rstrip()
    if body.endswith(","):
        body = body[:-1].rstrip()
    if not (body.endswith(('"', "}", "]", "true", "false", "null"))):
        raise HealingFailed("the answer was cut off inside a value")
    if body.endswith('"') and _ends_with_key(body):
        raise HealingFailed("the answer was cut off after a key")
    return body + "".join(reversed(stack))


def _ends_with_key(body: str) -> bool:
    """Whether the final string is an object key with no value yet (`{"a": 1, "b"`)."""
    start = len(body) - 2
    while start >= 0 and not (body[start] == '"' and (start == 0 or body[start - 1] != "\\")):
        start -= 1
    before = body[:start].rstrip()
    return before.endswith(("{", ",")) and _innermost(before) == "}"


def _innermost(text: str) -> str | None:
    stack, _, _ = _scan(text)
    return stack[-1] if stack else None
