"""Target health for routing: consecutive failures cool a target down for a while; the first call after that probes it.

`LocalHealth` keeps the state in-process; a shared implementation (Redis) satisfies the same `HealthState`
protocol so that every worker and instance skips the same dead target.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


class HealthState(Protocol):
    async def is_cooling(self, key: str) -> bool: ...

    async def record(self, key: str, *, ok: bool) -> None: ...

    def snapshot(self) -> dict[str, dict[str, float]]: ...


@dataclass(slots=True)
class _Entry:
    failures: int = 0
    cooled_until: float = 0.0


class LocalHealth:
    def __init__(
        self,
        *,
        failure_threshold: int = 3,
        cooldown_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.cooldown_seconds = cooldown_seconds
        self._clock = clock
        self._max_keys = max_keys
        self._entries: dict[str, _Entry] = {}

    async def is_cooling(self, key: str) -> bool:
        entry = self._entries.get(key)
        return entry is not None and entry.cooled_until > self._clock()

    async def record(self, key: str, *, ok: bool) -> None:
        if ok:
            self._entries.pop(key, None)
            return
        entry = self._entries.get(key)
        if entry is None:
            if len(self._entries) >= self._max_keys:
                self._entries.pop(next(iter(self._entries)))
            entry = self._entries[key] = _Entry()
        entry.failures += 1
        if entry.failures >= self.failure_threshold:
            entry.cooled_until = self._clock() + self.cooldown_seconds

    def snapshot(self) -> dict[str, dict[str, float]]:
        now = self._clock()
        return {
            key: {"failures": e.failures, "cooling_for_s": round(max(0.0, e.cooled_until - now), 3)}
            for key, e in self._entries.items()
        }
