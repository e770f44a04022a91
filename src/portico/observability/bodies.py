"""Request and response bodies in the call log: what is kept, how much, and what never is.

`logging.bodies` sets the gateway's choice (`none`, the default: a gateway that stores no prompt unless asked is
the safe one to install; `truncated`: the first `logging.body_max_bytes` bytes of each; `full`), and a request can
choose for itself with the `x-portico-log-bodies` header (any of the three: a team that debugs one call asks for
`full` on that call only). What is kept is decoded as UTF-8 (invalid bytes replaced), values of inputs marked
`is_pii` are replaced by `[PII]`, the configured provider and gateway keys and anything that looks like a key are
redacted, so a stored body, like a log line, never holds a secret. Nothing here runs for a request whose mode is
`none`: the request path only compares the mode once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import orjson

from portico.observability.logging import REDACTED, redact

BodyMode = Literal["none", "truncated", "full"]
BODY_MODES: tuple[BodyMode, ...] = ("none", "truncated", "full")
HEADER = b"x-portico-log-bodies"
_BY_NAME: dict[bytes, BodyMode] = {mode.encode(): mode for mode in BODY_MODES}
_SLACK = 512
_SHORTEST_SECRET = 8
"""A configured key shorter than this is not masked by its value (it would mask ordinary words); the patterns of
`redact` still apply to it."""


class BadBodyMode(ValueError):
    """The header named no mode: the request is refused (400) rather than logged in a way it did not ask for."""


class BodyPolicy:
    """The gateway's choice, and the literal secrets (provider and gateway keys) no stored body may hold."""

    __slots__ = ("_spelled", "max_bytes", "mode", "secrets")

    def __init__(self, mode: BodyMode = "none", max_bytes: int = 16384, secrets: Iterable[str] = ()) -> None:
        self.mode = mode
        self.max_bytes = max_bytes
        # longest first: a key that contains another is masked whole
        self.secrets = _longest_first(secrets)
        self._spelled = _spellings(self.secrets)

    def mode_for(self, header: bytes | None) -> BodyMode:
        if header is None:
            return self.mode
        found = _BY_NAME.get(header.strip().lower())
        if found is None:
            raise BadBodyMode(f"x-portico-log-bodies must be one of {', '.join(BODY_MODES)}")
        return found

    def limit(self, mode: BodyMode) -> int | None:
        """How many bytes of a body to collect while it passes (None: all of it). A little more than is kept, so
        that a secret or a PII value that crosses the cut is masked whole before the cut is made."""
        return self.max_bytes + _SLACK if mode == "truncated" else None

    def kept(
        self,
        body: bytes | None,
        mode: BodyMode,
        pii_values: Iterable[str] = (),
        *,
        not_seen: int = 0,
        keys: Iterable[str] = (),
    ) -> str | None:
        """`not_seen`: bytes a `BodyTap` already left out (a body is cut while it passes); `keys`: this request's
        own secrets (its gateway key, the provider key it brought or its virtual key resolved to)."""
        if mode == "none" or body is None:
            return None
        text = body.decode("utf-8", "replace")
        pii = tuple(value for value in pii_values if value)
        for value in _spellings(pii):
            if value in text:
                text = text.replace(value, "[PII]")
        own = _longest_first(keys) if keys else ()
        for secret in _spellings(own) + self._spelled if own else self._spelled:
            if secret in text:
                text = text.replace(secret, REDACTED)
        if text.startswith("data: ") and (pii or own or self.secrets):  # a stream: values split over frames
            masks = [(value, "[PII]") for value in pii] + [(key, REDACTED) for key in (*own, *self.secrets)]
            text = mask_across_frames(text, masks)
        text = _redacted(text)
        if "\x00" in text:  # PostgreSQL's text refuses NUL, and the record would be lost with it
            text = text.replace("\x00", "\\u0000")
        cut = not_seen
        if mode == "truncated":
            encoded = text.encode()
            if len(encoded) > self.max_bytes:
                text = encoded[: self.max_bytes].decode("utf-8", "ignore")  # never half a character
                cut += len(encoded) - len(text.encode())
        return f"{text}…[{cut} more bytes not kept]" if cut else text


def mask_across_frames(text: str, masks: list[tuple[str, str]]) -> str:
    """A stream's frames with every value that the answer spelled across several of them masked too.

    A model streams a name or a key in pieces (`"Jo"`, `"hn"`), so no frame holds it whole and the masking of the
    text missed it. Each choice's text (`delta.content`, or orq's `message.content`) is joined over the frames; an
    occurrence there is masked where it lies: its first piece's share becomes the mask, the other pieces' shares are
    dropped. Only the frames that change are re-encoded; the rest stay as the client got them."""
    frames = text.split("\n\n")
    pieces: dict[int, list[tuple[int, dict[str, object]]]] = {}  # choice index → (frame, the object holding text)
    decoded: dict[int, dict[str, object]] = {}
    for at, frame in enumerate(frames):
        if not frame.startswith("data: {"):
            continue
        try:
            event = orjson.loads(frame[6:])
        except orjson.JSONDecodeError:
            continue
        choices = event.get("choices") if isinstance(event, dict) else None
        for choice in choices if isinstance(choices, list) else ():
            if not isinstance(choice, dict):
                continue
            holder = choice.get("delta") if isinstance(choice.get("delta"), dict) else choice.get("message")
            if isinstance(holder, dict) and isinstance(holder.get("content"), str) and holder["content"]:
                pieces.setdefault(int(choice.get("index") or 0), []).append((at, holder))
                decoded[at] = event
    changed: set[int] = set()
    for parts in pieces.values():
        if len(parts) > 1 and _mask_split(parts, masks):
            changed.update(at for at, _ in parts)
    for at in changed:
        frames[at] = "data: " + orjson.dumps(decoded[at]).decode()
    return "\n\n".join(frames) if changed else text


def _mask_split(parts: list[tuple[int, dict[str, object]]], masks: list[tuple[str, str]]) -> bool:
    """Mask every occurrence in the pieces' joined text: each character becomes itself, the mask (where an
    occurrence starts) or nothing (the rest of it); an earlier mask wins where two occurrences overlap."""
    contents = [str(holder["content"]) for _, holder in parts]
    joined = "".join(contents)
    shown: list[str | None] = [None] * len(joined)  # None: the character as it is
    for value, mask in reversed(masks):
        start = joined.find(value)
        while start >= 0:
            shown[start : start + len(value)] = [mask] + [""] * (len(value) - 1)
            start = joined.find(value, start + len(value))
    if all(part is None for part in shown):
        return False
    offset = 0
    for (_, holder), content in zip(parts, contents, strict=True):
        end = offset + len(content)
        holder["content"] = "".join(c if m is None else m for c, m in zip(content, shown[offset:end], strict=True))
        offset = end
    return True


def _longest_first(secrets: Iterable[str]) -> tuple[str, ...]:
    """Longest first, so that a key that contains another is masked whole."""
    found = {secret for secret in secrets if secret and len(secret) >= _SHORTEST_SECRET}
    return tuple(sorted(found, key=len, reverse=True))


def _spellings(values: Iterable[str]) -> tuple[str, ...]:
    """Each value as written and as JSON writes it inside a string (escaped quotes; `\\uXXXX` or raw UTF-8)."""
    found: list[str] = []
    for value in values:
        found.append(value)
        try:
            escaped = orjson.dumps(value).decode()[1:-1]
        except TypeError:  # a lone surrogate: no JSON body can spell it
            continue
        if escaped != value:
            found.append(escaped)
        if not value.isascii():
            found.append(_json_ascii(escaped))
    return tuple(found)


def _redacted(text: str) -> str:
    """`redact`, run only when one of its patterns could match: its regexes cost ~45 µs per 250 characters, and
    a chat body seldom holds `sk-`, `bearer`, `api_key`/`api-key` or `key=` (each pattern needs one of them)."""
    low = text.lower()
    if "sk-" in text or "bearer" in low or "api_key" in low or "api-key" in low or "key=" in low:
        return redact(text)
    return text


def _json_ascii(escaped: str) -> str:
    """JSON's ASCII-only spelling (`ensure_ascii`): every non-ASCII character as `\\uXXXX` (surrogate pairs too)."""
    out = []
    for char in escaped:
        point = ord(char)
        if point < 0x80:
            out.append(char)
        elif point < 0x10000:
            out.append(f"\\u{point:04x}")
        else:
            point -= 0x10000
            out.append(f"\\u{0xD800 + (point >> 10):04x}\\u{0xDC00 + (point & 0x3FF):04x}")
    return "".join(out)


class BodyTap:
    """Collects a body as it passes, up to `limit` bytes (None: everything), for the call log."""

    __slots__ = ("_parts", "_room", "seen")

    def __init__(self, limit: int | None) -> None:
        self._parts: list[bytes] = []
        self._room = limit
        self.seen = 0

    def __call__(self, data: bytes) -> None:
        self.seen += len(data)
        room = self._room
        if room is None:
            self._parts.append(data)
        elif room > 0:
            self._parts.append(data[:room])
            self._room = room - len(data)

    def body(self) -> bytes:
        return b"".join(self._parts)

    @property
    def cut(self) -> int:
        return self.seen - sum(len(part) for part in self._parts)


class BodyCapture:
    """One exchange's bodies: what the client sent and what it was sent, kept by `kept()` once the call is over."""

    __slots__ = ("mode", "policy", "request", "response")

    def __init__(self, policy: BodyPolicy, mode: BodyMode) -> None:
        self.policy = policy
        self.mode = mode
        limit = policy.limit(mode)
        self.request = BodyTap(limit)
        self.response = BodyTap(limit)

    def kept(self, pii_values: Iterable[str] = (), keys: Iterable[str] = ()) -> tuple[str | None, str | None]:
        """(request body, response body) as the call log stores them; None for one that never passed. `keys`: the
        request's own secrets, masked as the configured ones are."""
        pii, own = tuple(pii_values), tuple(keys)
        policy, request, response = self.policy, self.request, self.response
        return (
            policy.kept(request.body(), self.mode, pii, not_seen=request.cut, keys=own) if request.seen else None,
            policy.kept(response.body(), self.mode, pii, not_seen=response.cut, keys=own) if response.seen else None,
        )
