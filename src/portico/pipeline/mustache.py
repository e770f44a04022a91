"""The `mustache` template engine (https://mustache.github.io/mustache.5.html), through pystache.

Sections (`{{#items}}…{{/items}}`, over lists and objects), inverted sections (`{{^items}}`), dotted names,
comments and set-delimiter tags behave as the standard says, and a missing name renders empty (CHECKLIST AMB-08).
Three choices differ from a web page's mustache, because a prompt is not HTML and its template is a client's:
`{{name}}` is not HTML-escaped (it equals `{{{name}}}`: `&` stays `&` for the model), a partial (`{{> name}}`)
renders empty (no file is ever read), and no method of a value is ever called (pystache calls none on the JSON
types that variables are). An unbalanced section is a 422 naming the tag. Imported only when a request or a
stored prompt asks for `template_engine: mustache`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import pystache
from pystache.parser import ParsingError

from portico.pipeline.templating import TemplateFailure

MAX_CACHED_CHARS = 16_384
"""Templates up to this long are kept parsed (256 of them at most): clients send the same templates again."""


def mustache_renderer(variables: Mapping[str, Any]) -> Callable[[str], str]:
    context = dict(variables)  # pystache reads a dict by key; a copy, so the request's own stays as sent
    renderer = _renderer()

    def render(text: str) -> str:
        if "{{" not in text:  # a set-delimiter tag starts with `{{` too
            return text
        template = _parsed(text) if len(text) <= MAX_CACHED_CHARS else _parse(text)
        result: str = renderer.render(template, context)
        return result

    return render


def syntax_error(text: str) -> str | None:
    """Why `text` is not a mustache template (None: it is). Admin writes check stored templates with this."""
    try:
        _parse(text)
    except TemplateFailure as exc:
        return str(exc)
    return None


@functools.cache
def _renderer() -> Any:
    return pystache.Renderer(escape=_verbatim, missing_tags="ignore", partials={}, string_encoding="utf-8")


def _verbatim(text: str) -> str:
    return text


@functools.lru_cache(maxsize=256)
def _parsed(text: str) -> Any:
    return _parse(text)


def _parse(text: str) -> Any:
    try:
        return pystache.parse(text)
    except ParsingError as exc:
        raise TemplateFailure(f"Mustache: {exc}") from None
