"""The one small interface every response-cache backend implements, and the factory that picks one from config.

The pipeline only ever sees `Cache`: bytes in, bytes out, a TTL in seconds. A backend that cannot reach its
store must not fail a request (fail open) — it answers `None` on read, drops the write, and reports the outage
through `health()` so `/health` and the `x-portico-cache: BYPASS` header can say so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from portico.config.schema import REDIS_SCHEMES, CacheConfig


@dataclass(frozen=True, slots=True)
class CacheHealth:
    backend: str
    ok: bool
    detail: str = ""


class Cache(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl_seconds: int) -> None: ...

    async def close(self) -> None: ...

    def health(self) -> CacheHealth: ...


def open_cache(config: CacheConfig) -> Cache:
    """`memory://` (default) keeps entries in this process; `redis://` / `rediss://` shares them across instances."""
    url = config.url.strip()
    if url.startswith(REDIS_SCHEMES):
        from portico.cache.redis import RedisCache

        return RedisCache(url)
    if url in ("memory://", "memory", ""):
        from portico.cache.memory import MemoryCache

        return MemoryCache(config.max_bytes)
    raise ValueError(cache_url_problem(url))


def cache_url_problem(url: str) -> str | None:
    """What `open_cache` refuses (the config check asks first)."""
    url = url.strip()
    if url.startswith(REDIS_SCHEMES) or url in ("memory://", "memory", ""):
        return None
    return f"cache.url: unsupported scheme in {url!r} (use memory:// or redis://host:port/db)"
