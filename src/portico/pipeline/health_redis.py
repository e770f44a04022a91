"""Target health shared by every worker and instance through Redis, so they all skip the same dead target.

Same protocol and semantics as `LocalHealth`: `failure_threshold` consecutive failures cool a target down for
`cooldown_seconds` (a Redis key with that TTL, so expiry needs no sweeper), and success clears the count. If Redis
is unreachable, routing falls back to the in-process state at once (no request waits on it), and says so once.
"""

from __future__ import annotations

import logging

from portico.cache.redis_link import DOWN, RedisLink
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
        self.link = RedisLink(url, name="routing health state", log=log)
        self._script = self.link.client.register_script(_RECORD_FAILURE)
        self._local = LocalHealth(failure_threshold=failure_threshold, cooldown_seconds=cooldown_seconds)

    @property
    def ok(self) -> bool:
        return self.link.up

    async def is_cooling(self, key: str) -> bool:
        link = self.link
        if link.up:
            cooling = await link.run(link.client.exists(_PREFIX + "cool:" + key))
            if cooling is not DOWN:
                return bool(cooling)
        return await self._local.is_cooling(key)

    async def record(self, key: str, *, ok: bool) -> None:
        await self._local.record(key, ok=ok)
        link = self.link
        if not link.up:
            return
        if ok:
            await link.run(link.client.delete(_PREFIX + "fail:" + key))
        else:
            keys = [_PREFIX + "fail:" + key, _PREFIX + "cool:" + key]
            await link.run(self._script(keys=keys, args=[self.failure_threshold, self.cooldown_ms]))

    def snapshot(self) -> dict[str, dict[str, float]]:
        """This instance's view (the shared counters live in Redis)."""
        return self._local.snapshot()

    async def close(self) -> None:
        await self.link.close()
