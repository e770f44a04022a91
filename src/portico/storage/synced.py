"""Stored objects the request path reads, kept in step across workers and instances (`StateSync`, `Namespace`).

Each namespace is an in-process dict loaded from the database, the source of truth; the request path only does a
dict lookup. A write commits its rows and bumps the namespace's `state_versions` row in one transaction, updates
the local copy (read-your-writes), then publishes the new version on Redis. Every process reloads a namespace
when a notification, or its poll of `state_versions` (the safety net, since pub/sub loses messages on reconnect),
shows another version. A database or Redis outage keeps the last good copy and is logged once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import sqlalchemy as sa

from portico.config.schema import REDIS_SCHEMES, Settings
from portico.storage.connection import Connection
from portico.storage.db import Database
from portico.storage.dialects import upsert
from portico.storage.tables import state_versions

log = logging.getLogger("portico.storage.sync")

T = TypeVar("T")
Loader = Callable[[Connection], Awaitable[dict[str, T]]]
Statements = Callable[[Connection], Awaitable[None]]
CHANNEL_PREFIX = "portico:state:"
_LISTEN_POLL = 1.0  # seconds a pub/sub read waits before checking again (bounded reads survive a silent peer)
_REDIS_RETRY = 1.0


def notify_url(settings: Settings) -> str | None:
    """Where writes are announced: `storage.notify_url`, else the routing state's Redis, else a Redis cache."""
    cache_url = settings.cache.url if settings.cache.url.startswith(REDIS_SCHEMES) else None
    return settings.storage.notify_url or settings.routing.state_url or cache_url


class Namespace(Generic[T]):
    """One kind of stored object: `data` maps id → object and is replaced whole on reload, so a reader always
    sees one consistent copy. `version` is the `state_versions` value that copy reflects (-1: never loaded)."""

    __slots__ = ("_lock", "data", "loader", "name", "version")

    def __init__(self, name: str, loader: Loader[T]) -> None:
        self.name = name
        self.loader = loader
        self.data: dict[str, T] = {}
        self.version = -1
        self._lock = asyncio.Lock()  # one reload or write at a time per process, so neither undoes the other

    def get(self, key: str) -> T | None:
        return self.data.get(key)

    def _apply(self, key: str, value: T | None) -> None:
        if value is None:
            self.data.pop(key, None)
        else:
            self.data[key] = value


class StateSync:
    """Owns the namespaces of one process. Without a database (`db=None`) it is a plain in-memory store; an
    in-memory SQLite database is private to the process, so nothing is polled or announced for it."""

    def __init__(self, db: Database | None, *, notify_url: str | None = None, interval: float = 0.5) -> None:
        self.db = db
        self.interval = interval
        self.notify_url = notify_url
        self.shared = db is not None and not db.memory
        self.namespaces: dict[str, Namespace[Any]] = {}
        self.reloads = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._redis: Any = None
        self._db_down = False
        self._redis_down = False

    def problem(self) -> str | None:
        """Why stored objects may be stale here (read by the health probe), or None while they are current."""
        if self._db_down:
            return "database unreachable: serving the last loaded copy"
        if self._redis_down:
            return "redis notifications unreachable: changes arrive by database poll only"
        return None

    def namespace(self, name: str, loader: Loader[T]) -> Namespace[T]:
        if name in self.namespaces:
            raise ValueError(f"state namespace {name!r} is registered twice")
        ns: Namespace[T] = Namespace(name, loader)
        self.namespaces[name] = ns
        return ns

    async def start(self) -> None:
        """Load every namespace (an unreachable database is logged and retried by the poll), then keep them
        current: the poll always, the Redis subscriber when a notify URL is set."""
        if self.db is None:
            return
        await self.refresh()
        if not self.shared:
            return
        self._tasks.append(asyncio.create_task(self._poll(), name="portico-state-poll"))
        if self.notify_url:
            import redis.asyncio as aioredis  # redis-py (~6 MiB) only when it is used

            self._redis = aioredis.Redis.from_url(self.notify_url, socket_timeout=0.5, socket_connect_timeout=0.5)
            self._tasks.append(asyncio.create_task(self._listen(), name="portico-state-listen"))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def write(self, ns: Namespace[T], key: str, value: T | None, statements: Statements) -> None:
        """Run `statements` and bump the namespace's version in one transaction, then set (or, for None, drop)
        `key` in the local copy, then announce the new version. Raises if the database refuses the write."""
        async with ns._lock:
            if self.db is None:
                version = max(ns.version, 0) + 1
            else:
                async with self.db.begin() as conn:
                    await statements(conn)
                    version = await _bump(conn, ns.name)
            ns._apply(key, value)
            # Only a version right after ours says nobody else wrote in between; otherwise the stale version
            # makes the next poll reload everything (our write included).
            if version == ns.version + 1:
                ns.version = version
        await self._publish(ns.name, version)

    async def refresh(self) -> bool:
        """Read every namespace's version (one SELECT) and reload those that differ. False if the database
        could not be read; the copies in memory are kept. Without a database there is nothing to read."""
        if self.db is None:
            return True
        try:
            async with self.db.begin() as conn:
                rows = (await conn.execute(sa.select(state_versions.c.namespace, state_versions.c.version))).all()
            versions = {str(name): int(version) for name, version in rows}
            for ns in self.namespaces.values():
                if versions.get(ns.name, 0) != ns.version:
                    await self._reload(ns)
        except Exception as exc:  # any driver's connection error: keep serving the last good copy
            if not self._db_down:
                log.warning("state sync: database unreachable (%s); serving the last loaded copy, retrying", exc)
            self._db_down = True
            return False
        if self._db_down:
            log.warning("state sync: database reachable again")
            self._db_down = False
        return True

    async def catch_up(self) -> None:
        """Read what other processes changed now, not at the next poll: for admin paths that must not act on a
        copy up to one interval old (deleting what another worker just created)."""
        if self.shared:
            await self.refresh()

    async def _reload(self, ns: Namespace[Any]) -> None:
        assert self.db is not None
        async with ns._lock:
            async with self.db.begin() as conn:
                # The version first: rows read after it are at least that new, so a change in between only
                # causes one more (harmless) reload, never a missed one.
                version = (
                    await conn.execute(sa.select(state_versions.c.version).where(state_versions.c.namespace == ns.name))
                ).scalar()
                data = await ns.loader(conn)
            ns.data = data
            ns.version = int(version or 0)
            self.reloads += 1

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.refresh()

    async def _publish(self, name: str, version: int) -> None:
        if self._redis is None or self._redis_down:  # known down: the listener says when it is back
            return
        try:
            await self._redis.publish(CHANNEL_PREFIX + name, str(version))
        except Exception as exc:  # the poll carries the change anyway
            self._redis_failed(exc)

    async def _listen(self) -> None:
        channels = {CHANNEL_PREFIX + name: name for name in self.namespaces}
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(*channels)
                if self._redis_down:
                    log.warning("state sync: redis notifications are back")
                    self._redis_down = False
                await self.refresh()  # whatever was announced while we were not listening
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=_LISTEN_POLL)
                    if message is not None:
                        await self._on_message(channels, message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._redis_failed(exc)
                await asyncio.sleep(_REDIS_RETRY)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def _on_message(self, channels: dict[str, str], message: dict[str, Any]) -> None:
        channel = message.get("channel")
        name = channels.get(channel.decode() if isinstance(channel, bytes) else str(channel))
        try:
            version = int(message.get("data") or 0)
        except ValueError:
            return
        ns = self.namespaces.get(name or "")
        if ns is not None and version != ns.version:
            await self.refresh()

    def _redis_failed(self, exc: Exception) -> None:
        if not self._redis_down:
            log.warning("state sync: redis unreachable (%s); changes propagate by database poll only", exc)
        self._redis_down = True


async def _bump(conn: Connection, name: str) -> int:
    """+1 on the namespace's version (created at 1), inside the caller's transaction; returns the new value."""
    statement = (
        upsert(state_versions, conn.dialect.name)
        .values(namespace=name, version=1)
        .on_conflict_do_update(
            index_elements=[state_versions.c.namespace], set_={"version": state_versions.c.version + 1}
        )
        .returning(state_versions.c.version)
    )
    return int((await conn.execute(statement)).scalar_one())
