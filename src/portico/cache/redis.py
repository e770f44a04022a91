"""Redis-backed cache shared by every worker and instance; TTL is enforced by Redis itself.

Fail open, and never wait on a Redis known to be down: while `RedisLink` says it is down, a read answers `None`
and a write is dropped at once, so requests are served uncached; a background probe brings it back.
"""

from __future__ import annotations

import logging

from portico.cache.base import CacheHealth
from portico.cache.redis_link import RedisLink

log = logging.getLogger("portico.cache")

_PREFIX = "portico:cache:"


class RedisCache:
    def __init__(self, url: str, *, probe_interval: float = 1.0) -> None:
        self.url = url
        self.link = RedisLink(url, name="cache", log=log, probe_interval=probe_interval)

    async def get(self, key: str) -> bytes | None:
        link = self.link
        if not link.up:
            return None
        value = await link.run(link.client.get(_PREFIX + key))
        return value if isinstance(value, bytes) else None

    async def set(self, key: str, value: bytes, ttl_seconds: int) -> None:
        link = self.link
        if ttl_seconds > 0 and link.up:
            await link.run(link.client.set(_PREFIX + key, value, ex=ttl_seconds))

    async def close(self) -> None:
        await self.link.close()

    def health(self) -> CacheHealth:
        if self.link.up:
            return CacheHealth("redis", True, "")
        return CacheHealth("redis", False, f"unreachable: {self.link.last_error}")
