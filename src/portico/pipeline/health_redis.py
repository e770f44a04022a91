"""Target health shared by every worker and instance through Redis, so they all skip the same dead target.

Same protocol and semantics as `LocalHealth`: `failure_threshold` consecutive failures cool a target down for
`cooldown_seconds` (a Redis key with that TTL, so expiry needs no sweeper), and success clears the count. If Redis
is unreachable, routing falls back to the in-process state instead of failing requests, and says so once.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from portico.pipeline.health import LocalHealth

log = logging.getLogger("portico.routing")

_PREFIX = "portico:health:"
_RECORD_FAILURE = """
local n = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if n >= tonumber(ARGV[1]) then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
end
return n
"""


class RedisHealth:
    def __init__(self, url: str, *, failure_threshold: int = 3, cooldown_seconds: float = 30.0) -> None:
        self.failure_threshold = failure_threshold
        self.cooldown_ms = max(1, int(cooldown_seconds * 1000))
        self._client: Any = aioredis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._script = self._client.register_script(_RECORD_FAILURE)
        self._local = LocalHealth(failure_threshold=failure_threshold, cooldown_seconds=cooldown_seconds)
        self._down_until = 0.0
        self.ok = True

    def _usable(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, error: Exception) -> None:
        if self.ok:
            log.warning("routing: redis health state unreachable (%s); using in-process state", error)
        self.ok = False
        self._down_until = time.monotonic() + 1.0

    def _back(self) -> None:
        if not self.ok:
            log.warning("routing: redis health state is back")
        self.ok = True

    async def is_cooling(self, key: str) -> bool:
        if self._usable():
            try:
                cooling = bool(await self._client.exists(_PREFIX + "cool:" + key))
            except (RedisError, OSError) as error:
                self._failed(error)
            else:
                self._back()
                return cooling
        return await self._local.is_cooling(key)

    async def record(self, key: str, *, ok: bool) -> None:
        await self._local.record(key, ok=ok)
        if not self._usable():
            return
        try:
            if ok:
                await self._client.delete(_PREFIX + "fail:" + key)
            else:
                await self._script(
                    keys=[_PREFIX + "fail:" + key, _PREFIX + "cool:" + key],
                    args=[self.failure_threshold, self.cooldown_ms],
                )
        except (RedisError, OSError) as error:
            self._failed(error)
        else:
            self._back()

    def snapshot(self) -> dict[str, dict[str, float]]:
        """This instance's view (the shared counters live in Redis)."""
        return self._local.snapshot()

    async def close(self) -> None:
        await self._client.aclose()
