"""Redis-backed cache shared by every worker and instance; TTL is enforced by Redis itself.

Fail open: when Redis is unreachable a read answers `None` and a write is dropped, so requests keep being
served uncached. After a failure the backend stops trying for a short, growing backoff (so an outage costs no
connect timeout per request), logs one warning when the outage starts and one line when it ends.
"""

from __future__ import annotations

import logging
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from portico.cache.base import CacheHealth

log = logging.getLogger("portico.cache")

_PREFIX = "portico:cache:"
_MAX_BACKOFF_S = 5.0


class RedisCache:
    def __init__(self, url: str, *, socket_timeout: float = 0.5) -> None:
        self.url = url
        self._client: aioredis.Redis = aioredis.Redis.from_url(
            url, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout, retry_on_timeout=False
        )
        self._down_since: float | None = None
        self._retry_at = 0.0
        self._backoff = 0.25
        self._last_error = ""

    def _available(self) -> bool:
        return self._down_since is None or time.monotonic() >= self._retry_at

    def _failed(self, error: Exception) -> None:
        now = time.monotonic()
        self._last_error = f"{type(error).__name__}: {error}"
        if self._down_since is None:
            self._down_since = now
            self._backoff = 0.25
            log.warning("cache: redis unreachable (%s); serving uncached until it returns", self._last_error)
        else:
            self._backoff = min(self._backoff * 2, _MAX_BACKOFF_S)
        self._retry_at = now + self._backoff

    def _succeeded(self) -> None:
        if self._down_since is not None:
            log.warning("cache: redis is back after %.1fs", time.monotonic() - self._down_since)
            self._down_since = None

    async def get(self, key: str) -> bytes | None:
        if not self._available():
            return None
        try:
            value = await self._client.get(_PREFIX + key)
        except (RedisError, OSError) as error:
            self._failed(error)
            return None
        self._succeeded()
        return value if isinstance(value, bytes) else None

    async def set(self, key: str, value: bytes, ttl_seconds: int) -> None:
        if ttl_seconds <= 0 or not self._available():
            return
        try:
            await self._client.set(_PREFIX + key, value, ex=ttl_seconds)
        except (RedisError, OSError) as error:
            self._failed(error)
            return
        self._succeeded()

    async def close(self) -> None:
        await self._client.aclose()

    def health(self) -> CacheHealth:
        if self._down_since is None:
            return CacheHealth("redis", True, "")
        return CacheHealth("redis", False, f"unreachable: {self._last_error}")
