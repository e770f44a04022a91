"""How a process that cannot start says so: one line on stderr (what failed, what to do), never a traceback
for a failure an operator can fix; uvicorn's start-up failure code (3) so a supervisor stops instead of respawning.
"""

from __future__ import annotations

import logging
import os
import sys

from portico.config.load import ConfigError

STARTUP_FAILURE = 3
"""uvicorn's own code for "failed before serving": its supervisor stops the server on it."""

log = logging.getLogger("portico")


class StartupError(Exception):
    """A start-up failure with its remedy: `str()` is what failed, `hint` what to do about it."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


EXPECTED = (StartupError, ConfigError, OSError, ValueError, ImportError)
"""Failures an operator fixes in the config or the environment: reported in one line, no traceback."""


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, ConfigError):
        return "; ".join(exc.problems)
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}"
    return str(exc) or type(exc).__name__


def startup_line(exc: BaseException) -> str:
    hint = exc.hint if isinstance(exc, StartupError) else "fix the cause above, then start again"
    return f"portico: cannot start (pid {os.getpid()}): {describe_error(exc)}; {hint}"


def report_startup_failure(exc: BaseException) -> None:
    """One line on stderr; an unexpected failure (a bug) also gets its traceback in the log."""
    sys.stderr.flush()
    os.write(2, (startup_line(exc) + "\n").encode())  # one write: lines of several workers never interleave
    if not isinstance(exc, EXPECTED):
        log.error("start-up failed unexpectedly", exc_info=exc)
