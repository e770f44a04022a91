"""In-process cache bounded by bytes: LRU eviction plus per-entry TTL, so memory cannot grow without bound.

Entry size counts the key and the value; an entry larger than the whole bound is simply not kept. Expired
entries are dropped lazily on read and pushed out by LRU order on write — no background task to manage.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from portico.cache.base import CacheHealth

_ENTRY_OVERHEAD = 64  # rough per-entry bookkeeping, so many tiny entries still count against the bound


class MemoryCache:
    def __init__(self, max_bytes: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_bytes = max_bytes
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self.size_bytes = 0

    @staticmethod
    def _cost(key: str, value: bytes) -> int:
        return len(key) + len(value) + _ENTRY_OVERHEAD

    async def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if expires <= self._clock():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return value

    async def set(self, key: str, value: bytes, ttl_seconds: int) -> None:
        if key in self._entries:
            self._drop(key)
        cost = self._cost(key, value)
        if cost > self.max_bytes or ttl_seconds <= 0:
            return
        while self.size_bytes + cost > self.max_bytes and self._entries:
            self._drop(next(iter(self._entries)))
        self._entries[key] = (self._clock() + ttl_seconds, value)
        self.size_bytes += cost

    def _drop(self, key: str) -> None:
        _, value = self._entries.pop(key)
        self.size_bytes -= self._cost(key, value)

    def __len__(self) -> int:
        return len(self._entries)

    async def close(self) -> None:
        self._entries.clear()
        self.size_bytes = 0

    def health(self) -> CacheHealth:
        return CacheHealth("memory", True, f"{len(self._entries)} entries, {self.size_bytes}/{self.max_bytes} bytes")
