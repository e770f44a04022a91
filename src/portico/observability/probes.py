"""Background probes of the dependencies a gateway is configured with, for a `/health` that tells the truth.

Each probe runs once at start-up and then every `interval` seconds, bounded by `timeout`, off the request path:
`/health` reads the last results (ok, latency, last error, when) and never waits on a dependency itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

Check = Callable[[], Awaitable[None]]
OnFailure = Callable[[BaseException], None]


@dataclass(slots=True)
class Probe:
    name: str
    target: str
    check: Check
    on_failure: OnFailure | None = None
    ok: bool | None = None
    """None until the first probe finished."""
    latency_ms: float | None = None
    last_error: str | None = None
    checked_at: float | None = None
    extra: Callable[[], dict[str, Any]] | None = field(default=None)

    def report(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "target": self.target,
            "ok": self.ok,
            "latency_ms": self.latency_ms,
            "last_error": self.last_error,
            "checked_at": self.checked_at,
        }
        if self.extra is not None:
            out.update(self.extra())
        return out


class Probes:
    def __init__(self, *, interval: float = 5.0, timeout: float = 2.0) -> None:
        self.interval = interval
        self.timeout = timeout
        self.probes: dict[str, Probe] = {}
        self._task: asyncio.Task[None] | None = None

    def add(
        self,
        name: str,
        target: str,
        check: Check,
        *,
        on_failure: OnFailure | None = None,
        extra: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.probes[name] = Probe(name, target, check, on_failure, extra=extra)

    @property
    def ok(self) -> bool:
        """False while any probe's last result is a failure (a probe not run yet counts as fine)."""
        return all(probe.ok is not False for probe in self.probes.values())

    async def start(self) -> None:
        """The first round now (every probe at once, each bounded), then the background loop."""
        await self.run_once()
        if self._task is None and self.probes:
            self._task = asyncio.create_task(self._loop(), name="portico-health-probes")

    async def run_once(self) -> None:
        await asyncio.gather(*(self._probe(probe) for probe in self.probes.values()))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def report(self) -> dict[str, dict[str, Any]]:
        return {name: probe.report() for name, probe in self.probes.items()}

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.run_once()

    async def _probe(self, probe: Probe) -> None:
        start = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout):
                await probe.check()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            probe.ok = False
            probe.last_error = (
                f"no answer within {self.timeout:g} s" if isinstance(exc, TimeoutError) else _describe(exc)
            )
            probe.latency_ms = None
            if probe.on_failure is not None:
                probe.on_failure(exc)
        else:
            probe.ok = True
            probe.latency_ms = round((time.perf_counter() - start) * 1000, 2)
        probe.checked_at = round(time.time(), 3)


def _describe(error: BaseException) -> str:
    text = str(error).splitlines()[0][:300] if str(error) else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
