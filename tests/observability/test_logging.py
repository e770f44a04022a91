"""Secrets never reach a log line: Bearer tokens, sk- keys and API-key values are redacted, tracebacks included."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from portico.observability.logging import REDACTED, JsonFormatter, RedactingFilter, configure_logging, redact

SECRETS = ("sk-proj-AbC123xyz789", "eyJhbGciOi.secret-token", "AIzaSyD-secretgooglekey", "k3y-from-header")


@pytest.mark.parametrize(
    "line",
    [
        "Authorization: Bearer eyJhbGciOi.secret-token",
        "headers={'authorization': 'bearer eyJhbGciOi.secret-token', 'x-api-key': 'k3y-from-header'}",
        'upstream said: {"error": "Incorrect API key provided: sk-proj-AbC123xyz789"}',
        "x-api-key: k3y-from-header",
        "X-Portkey-Api-Key=k3y-from-header; other=1",
        '{"x-goog-api-key": "AIzaSyD-secretgooglekey"}',
        "GET https://generativelanguage.googleapis.com/v1/models?key=AIzaSyD-secretgooglekey&alt=sse",
        "api_key='sk-proj-AbC123xyz789'",
    ],
)
def test_redact_removes_every_kind_of_secret(line: str) -> None:
    cleaned = redact(line)
    assert REDACTED in cleaned
    for secret in SECRETS:
        assert secret not in cleaned


def test_redact_leaves_ordinary_text_alone() -> None:
    text = "served openai/gpt-4o in 12 ms (request 1f2e, skipped 2 targets, task-key rotation)"
    assert redact(text) == text


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("portico.test_redaction")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)


def test_every_line_is_json_and_redacted_args_extras_and_tracebacks_included(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    logger.info(
        "calling upstream with %s", {"Authorization": "Bearer eyJhbGciOi.secret-token"}, extra={"request_id": "r1"}
    )
    try:
        raise RuntimeError("bad key sk-proj-AbC123xyz789")
    except RuntimeError:
        logger.exception("failed x-api-key=k3y-from-header")
    logger.warning("with an extra", extra={"upstream_key": "sk-proj-AbC123xyz789"})
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3
    entries = [json.loads(line) for line in lines]
    assert entries[0]["level"] == "INFO" and entries[0]["logger"] == "portico.test_redaction"
    assert entries[0]["request_id"] == "r1" and "Bearer [REDACTED]" in entries[0]["message"]
    assert "RuntimeError" in entries[1]["exc"] and REDACTED in entries[1]["exc"]
    for secret in SECRETS:
        assert secret not in stream.getvalue()


def test_configure_logging_filters_uvicorn_handlers_and_is_idempotent() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    uvicorn_error = logging.getLogger("uvicorn.error")
    uvicorn_error.addHandler(handler)
    level = logging.getLogger("portico").level
    root_filters = {h: h.filters[:] for h in logging.getLogger().handlers}  # pytest's own handlers
    try:
        configure_logging("debug")
        configure_logging("DEBUG")
        assert logging.getLogger("portico").level == logging.DEBUG
        assert sum(isinstance(f, RedactingFilter) for f in handler.filters) == 1
        uvicorn_error.error("client sent Bearer eyJhbGciOi.secret-token")
        assert "secret-token" not in stream.getvalue() and REDACTED in stream.getvalue()
    finally:
        uvicorn_error.removeHandler(handler)
        logging.getLogger("portico").setLevel(level)
        for root_handler, filters in root_filters.items():
            root_handler.filters[:] = filters


def test_configure_logging_installs_a_json_handler_only_on_a_bare_root() -> None:
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers.clear()
    stream = io.StringIO()
    level = logging.getLogger("portico").level
    try:
        added = configure_logging("INFO", stream=stream)
        assert added is not None and isinstance(added.formatter, JsonFormatter)
        assert configure_logging("INFO", stream=stream) is None  # the root has a handler now
        logging.getLogger("portico.test").info("key sk-proj-AbC123xyz789 rotated")
        assert json.loads(stream.getvalue())["message"] == "key sk-[REDACTED] rotated"
    finally:
        root.handlers[:] = saved
        logging.getLogger("portico").setLevel(level)
