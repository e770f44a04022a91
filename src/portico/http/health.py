"""`/health` (ready: the report of every configured dependency) and `/health/live` (the process answers).

What `/health` says comes from background probes (`observability.probes`): storage (SELECT 1), each Redis the
config names (PING; a failure marks that link down at once), the state sync's own view. Nothing here waits on a
dependency while a request is served, and `/health/live` touches none: orchestrators restart on it.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from portico.cache.base import Cache
from portico.observability.probes import Probes
from portico.pipeline.health import HealthState
from portico.storage.db import Database
from portico.storage.synced import StateSync

LIVE_BODY = b'{"status":"live"}'


def build_probes(
    db: Database, cache: Cache, routing: HealthState, sync: StateSync, *, interval: float = 5.0, timeout: float = 2.0
) -> Probes:
    probes = Probes(interval=interval, timeout=timeout)

    async def select_one() -> None:
        async with db.begin() as connection:
            await connection.execute(sa.text("SELECT 1"))

    probes.add("storage", db.url.render_as_string(hide_password=True), select_one)
    for name, owner in (("cache", cache), ("routing_state", routing)):
        link = getattr(owner, "link", None)  # the Redis-backed ones; in-process ones have nothing to probe
        if link is not None:
            probes.add(name, _redis_target(link.client), _ping(link), on_failure=link.mark_down)

    async def sync_current() -> None:
        problem = sync.problem()
        if problem is not None:
            raise RuntimeError(problem)

    if sync.shared:
        probes.add("state_sync", f"every {sync.interval:g} s" + (" + redis" if sync.notify_url else ""), sync_current)
    return probes


def _ping(link: Any) -> Any:
    async def ping() -> None:
        await link.client.ping()

    return ping


def _redis_target(client: Any) -> str:
    kwargs = client.connection_pool.connection_kwargs
    where = kwargs.get("path") or f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"
    return f"redis://{where}/{kwargs.get('db', 0)}"
