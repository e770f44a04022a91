"""Render `{{variables}}` into message text (CHECKLIST AMB-07..09): string contents and text parts of every message.

Engines: `text` (default; also `default` and `f-string`) — `{{ name }}` replaced, unknown names left verbatim;
`jinja` — a sandboxed Jinja2 environment with a work budget (`jinja_sandbox.py`), unknown names empty; `mustache` —
the logic-less standard with sections, not HTML-escaped (`mustache.py`), unknown names empty. Any template failure
is a 422, never a 500. Tool-call arguments, images and files are never touched.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from portico.core.deployments import PLACEHOLDER
from portico.core.errors import FieldError, ValidationFailed
from portico.core.types import JSONObject

_PLACEHOLDER = PLACEHOLDER


def render_messages(body: JSONObject, variables: Mapping[str, Any], engine: str = "text") -> JSONObject:
    if engine == "jinja":
        render = _jinja_renderer(variables)
    elif engine == "mustache":
        render = _mustache_renderer(variables)
    else:
        render = _text_renderer(variables)
    messages = []
    for i, original in enumerate(body.get("messages") or ()):
        message = original
        content = message.get("content")
        try:
            if isinstance(content, str):
                message = {**message, "content": render(content)}
            elif isinstance(content, list):
                parts = [
                    {**p, "text": render(p["text"])}
                    if p.get("type") == "text" and isinstance(p.get("text"), str)
                    else p
                    for p in content
                ]
                message = {**message, "content": parts}
        except TemplateFailure as exc:
            raise ValidationFailed(
                [FieldError(("body", "messages", i, "content"), str(exc), "template_error")]
            ) from None
        messages.append(message)
    return {**body, "messages": messages}


class TemplateFailure(ValueError):
    """A template that cannot be rendered; its message is for the client."""


def _text_renderer(variables: Mapping[str, Any]) -> Callable[[str], str]:
    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        return str(variables[name]) if name in variables else match.group(0)

    def render(text: str) -> str:
        return _PLACEHOLDER.sub(substitute, text) if "{{" in text else text

    return render


def _jinja_renderer(variables: Mapping[str, Any]) -> Callable[[str], str]:
    from portico.pipeline.jinja_sandbox import jinja_renderer  # Jinja is imported by the requests that use it

    return jinja_renderer(variables)


def _mustache_renderer(variables: Mapping[str, Any]) -> Callable[[str], str]:
    from portico.pipeline.mustache import mustache_renderer  # pystache is imported by the requests that use it

    return mustache_renderer(variables)
