"""Structured logs (one JSON object per line) with secrets redacted from every line.

`RedactingFilter` rewrites a record's message and traceback before any handler formats it: Bearer tokens,
`sk-...` keys and API-key header or query values never reach a log.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import IO, Any

REDACTED = "[REDACTED]"
_PATTERNS = (
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1" + REDACTED),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{4,}"), "sk-" + REDACTED),
    (
        re.compile(r"""(?i)((?:x-(?:portkey-|goog-)?)?api[-_]key['"]?\s*[:=]\s*['"]?)[^'"\s,;&}]+"""),
        r"\1" + REDACTED,
    ),
    (re.compile(r"(?i)([?&]key=)[^&\s'\"]+"), r"\1" + REDACTED),
)
_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")
# The attributes every LogRecord has; anything else was passed as `extra=` and belongs in the JSON line.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Attach to handlers: it lets every record through, with its message and traceback redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "message", ...extra, "exc"}`; the line is redacted once more as a whole."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        return redact(json.dumps(entry, default=str, ensure_ascii=False))


def configure_logging(level: str = "INFO", *, stream: IO[str] | None = None) -> logging.Handler | None:
    """Set Portico's log level; give the root logger a JSON handler unless it already has one (an embedding
    application's, or pytest's); put a `RedactingFilter` on every handler of the root and uvicorn loggers.

    Returns the handler it added, if any. Safe to call more than once.
    """
    logging.getLogger("portico").setLevel(level.upper())
    root = logging.getLogger()
    added: logging.Handler | None = None
    if not root.handlers:
        added = logging.StreamHandler(stream or sys.stderr)
        added.setFormatter(JsonFormatter())
        root.addHandler(added)
    for logger in (root, *(logging.getLogger(name) for name in _UVICORN_LOGGERS)):
        for handler in logger.handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(RedactingFilter())
    return added
