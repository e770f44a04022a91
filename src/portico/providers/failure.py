"""What a failed upstream call may carry out of the provider layer: scrubbed of every secret the call sent, and
bounded to a short excerpt of the upstream's answer.

Runs only when a call fails: a successful call pays nothing. Every `ProviderError` leaving `HttpProvider` passes
through `clean_error`, so a message, a body excerpt or a cause chain never holds a credential or a whole body.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from portico.core.errors import ProviderError

REDACTED = "[REDACTED]"
MAX_MESSAGE_CHARS = 1000
MAX_EXCERPT_CHARS = 500
# Below this a "secret" would blank ordinary words out of messages; real keys are far longer.
_MIN_SECRET_CHARS = 6

_SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "api-key",
        "x-goog-api-key",
        "x-amz-security-token",
        "x-portkey-api-key",
        "cookie",
    }
)
_SECRET_PARAMS = frozenset(
    {"key", "api_key", "apikey", "api-key", "access_token", "token", "sig", "signature", "x-amz-signature"}
    | {"x-amz-credential", "x-amz-security-token", "code"}
)


def call_secrets(headers: Mapping[str, str], url: str, api_key: str | None) -> list[str]:
    """Every credential one upstream call carries, longest first (a key inside a longer header value is
    replaced with it)."""
    found: set[str] = {api_key} if api_key else set()
    for name, value in headers.items():
        if name.lower() in _SECRET_HEADERS or (api_key and api_key in value):
            found.update(_header_secrets(value))
    query = urlsplit(url).query
    if query:
        found.update(value for name, value in parse_qsl(query) if name.lower() in _SECRET_PARAMS)
    return sorted((s for s in found if len(s) >= _MIN_SECRET_CHARS), key=len, reverse=True)


def _header_secrets(value: str) -> Iterable[str]:
    """The value, and the parts of it that are secrets by themselves: `Bearer <key>`'s key, SigV4's access key
    id and signature."""
    yield value
    _, _, rest = value.strip().partition(" ")
    if rest and " " not in rest.strip():
        yield rest.strip()
    if "Credential=" in value or "Signature=" in value:
        for part in value.replace(",", " ").split():
            name, _, field = part.partition("=")
            if name == "Credential":
                yield field.split("/", 1)[0]
            elif name == "Signature":
                yield field


def scrub_text(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def excerpt(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _clean_body(body: Any, secrets: list[str]) -> Any:
    """A body kept on an error is the upstream's small error object (scrubbed), or a scrubbed excerpt of it."""
    if body is None:
        return None
    if isinstance(body, bytes | bytearray | memoryview):
        body = bytes(body[: MAX_EXCERPT_CHARS * 4]).decode("utf-8", "replace")
    if isinstance(body, str):
        return scrub_text(excerpt(body, MAX_EXCERPT_CHARS), secrets)
    try:
        size = len(orjson.dumps(body))
    except TypeError:
        return scrub_text(excerpt(repr(body)[: MAX_EXCERPT_CHARS * 4], MAX_EXCERPT_CHARS), secrets)
    if size > MAX_EXCERPT_CHARS * 4:
        return scrub_text(
            excerpt(orjson.dumps(body)[: MAX_EXCERPT_CHARS * 4].decode("utf-8", "replace"), MAX_EXCERPT_CHARS), secrets
        )
    return _scrub_value(body, secrets)


def _scrub_value(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        return scrub_text(value, secrets)
    if isinstance(value, dict):
        return {scrub_text(str(k), secrets): _scrub_value(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub_value(v, secrets) for v in value]
    return value


def clean_error(error: ProviderError, secrets: list[str]) -> ProviderError:
    """Scrub and bound `error` in place; its cause chain is cut, since a parser's exception holds the document it
    choked on (`JSONDecodeError.doc` is the whole body)."""
    message = scrub_text(excerpt(error.message, MAX_MESSAGE_CHARS), secrets)
    error.message = message
    error.args = (message,)
    error.body = _clean_body(error.body, secrets)
    error.__cause__ = None
    error.__context__ = None
    error.__suppress_context__ = True
    return error
