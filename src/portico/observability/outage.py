"""`Outage`: whether the call log's database answers, since when it does not, why, and how long to wait.

Logging stays bounded whatever the failure rate: one line when an outage starts and one when it ends, reminders
at most every `warn_every` seconds (`Throttle`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger("portico.recorder")


class Throttle:
    """Lets a log line through at most once per `every` seconds."""

    def __init__(self, every: float, clock: Callable[[], float]) -> None:
        self.every = every
        self.clock = clock
        self.last: float | None = None

    def ready(self) -> bool:
        now = self.clock()
        if self.last is None or now - self.last >= self.every:
            self.last = now
            return True
        return False


class Outage:
    def __init__(
        self, *, retry_delay: float, retry_max_seconds: float, warn_every: float, clock: Callable[[], float]
    ) -> None:
        self.retry_delay = retry_delay
        self.retry_max_seconds = retry_max_seconds
        self.clock = clock
        self.since: float | None = None
        """When the current outage began; None while the database answers."""
        self.last_error: str | None = None
        self.spool_full_logged = False
        """Set once the spool overflowed in this outage: the drop is logged once per outage, then counted only."""
        self._delay = retry_delay
        self._reminder = Throttle(warn_every, clock)

    @property
    def active(self) -> bool:
        return self.since is not None

    def age(self) -> float:
        return self.clock() - self.since if self.since is not None else 0.0

    def failed(self, error: BaseException) -> None:
        self.last_error = (f"{type(error).__name__}: {error}" if str(error) else type(error).__name__)[:300]
        if self.since is None:
            self.since = self.clock()
            self.spool_full_logged = False
            log.warning("call log: the database is not answering (%s); records wait", self.last_error)
        elif self._reminder.ready():
            log.warning("call log: still waiting for the database (%s)", self.last_error)

    def recovered(self) -> None:
        if self.since is not None:
            log.warning("call log: the database answers again after %.1fs", self.age())
            self.since = None
        self._delay = self.retry_delay

    def next_delay(self) -> float:
        """The wait before the next try: doubling from `retry_delay` up to `retry_max_seconds`."""
        delay = self._delay
        self._delay = min(delay * 2, self.retry_max_seconds)
        return delay
