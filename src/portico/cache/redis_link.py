"""`RedisLink`: one Redis client plus the knowledge of whether Redis answers, so no request waits on a dead Redis.

While up, every command runs under a short deadline (`socket_timeout` in the URL, default 0.25 s); the first
failure marks Redis down for everyone at once and cuts short the commands still waiting. While down, callers
skip Redis without awaiting anything, and a background task PINGs it every second until it answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Awaitable
from typing import Any, Final, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

T = TypeVar("T")

DEFAULT_TIMEOUT: Final = 0.25
PROBE_INTERVAL: Final = 1.0


class Down(enum.Enum):
    DOWN = "down"


DOWN: Final = Down.DOWN
"""What `RedisLink.run` answers when the command failed or was cut short: Redis is (now) marked down."""


def split_timeout(url: str, default: float) -> tuple[str, float]:
    """`redis://h/0?socket_timeout=0.1` → the URL without it, and 0.1: the link enforces the timeout itself."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    timeout = default
    kept = []
    for name, value in query:
        if name == "socket_timeout":
            try:
                timeout = float(value)
            except ValueError:
                raise ValueError(f"redis url: socket_timeout must be a number of seconds, not {value!r}") from None
        else:
            kept.append((name, value))
    if timeout <= 0:
        raise ValueError("redis url: socket_timeout must be positive")
    return urlunsplit(parts._replace(query=urlencode(kept))), timeout


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


class RedisLink:
    def __init__(self, url: str, *, name: str, log: logging.Logger, probe_interval: float = PROBE_INTERVAL) -> None:
        url, self.timeout = split_timeout(url, DEFAULT_TIMEOUT)
        # `run` bounds each whole command (connect, send, read) with one deadline of its own.
        self.client: Any = aioredis.Redis.from_url(
            url,
            socket_timeout=None,  # redis-py's default (5 s) would wrap every command in a task of its own
            socket_connect_timeout=self.timeout,
            retry=Retry(NoBackoff(), 0),
            retry_on_timeout=False,
        )
        self.name = name
        self.up = True
        self.last_error = ""
        self._log = log
        self._probe_interval = probe_interval
        self._down_since = 0.0
        self._waiting: set[asyncio.Timeout] = set()
        self._probe: asyncio.Task[None] | None = None

    async def run(self, command: Awaitable[T]) -> T | Down:
        """Await `command` under the deadline. Check `up` before building the command: while down, skip it."""
        try:
            async with asyncio.timeout(self.timeout) as deadline:
                self._waiting.add(deadline)
                try:
                    return await command
                finally:
                    self._waiting.discard(deadline)
        except (RedisError, OSError, TimeoutError) as error:
            self.mark_down(error)
            return DOWN

    def mark_down(self, error: BaseException) -> None:
        if not self.up:
            return
        self.up = False
        self.last_error = _describe(error)
        self._down_since = time.monotonic()
        self._log.warning("%s: redis unreachable (%s); skipping it until it answers", self.name, self.last_error)
        now = asyncio.get_running_loop().time()
        for deadline in self._waiting:  # they would each wait out their own timeout on the same dead Redis
            if not deadline.expired():
                deadline.reschedule(now)
        if self._probe is None or self._probe.done():
            self._probe = asyncio.get_running_loop().create_task(self._wait_until_up())

    async def _wait_until_up(self) -> None:
        while not self.up:
            await asyncio.sleep(self._probe_interval)
            try:
                async with asyncio.timeout(self.timeout):
                    await self.client.ping()
            except (RedisError, OSError, TimeoutError) as error:
                self.last_error = _describe(error)
                continue
            self.up = True
            self._log.warning("%s: redis is back after %.1fs", self.name, time.monotonic() - self._down_since)

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
        await self.client.aclose()
