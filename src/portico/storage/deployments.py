"""Stored, versioned deployments (`DeploymentStore`): every version in memory, kept in step across workers.

The request path calls `get()`, a dict lookup with no I/O. A write adds one immutable row to `deployment_versions`;
the next version number is checked inside the write's transaction, so two writers racing on one key cannot both
write the same version. A rollback writes the old version's content as a new version; deleting removes them all.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from portico.core.deployments import Deployment, content_hash
from portico.core.errors import NotFound, RequestError
from portico.storage.synced import Statements, StateSync
from portico.storage.tables import deployment_versions

History = tuple[Deployment, ...]
"""Every version of one deployment, oldest first."""
_ATTEMPTS = 3


class DeploymentConflict(RequestError):
    http_status = 409
    type = "conflict_error"


class _Stale(Exception):
    """The database holds a newer version than this process has loaded."""


def deployment_not_found(key: str, version: int | None = None) -> NotFound:
    if version is not None:
        return NotFound(
            f"Deployment '{key}' has no version {version}.", code="deployment_version_not_found", param="version"
        )
    return NotFound(f"Deployment '{key}' not found.", code="deployment_not_found", param="key")


class DeploymentStore:
    """Without a `StateSync` on a database, deployments live in this process only (tests, tools)."""

    def __init__(self, sync: StateSync | None = None) -> None:
        self.sync = sync or StateSync(None)
        self._ns = self.sync.namespace("deployments", load_deployments)

    def get(self, key: str) -> Deployment | None:
        """The current version; the request path's lookup (a dict read, no I/O)."""
        history = self._ns.data.get(key)
        return history[-1] if history else None

    def versions(self, key: str) -> History | None:
        return self._ns.data.get(key)

    def version(self, key: str, version: int) -> Deployment | None:
        return next((d for d in self._ns.data.get(key) or () if d.version == version), None)

    def current(self) -> list[Deployment]:
        """The current version of every deployment, by key."""
        return [self._ns.data[key][-1] for key in sorted(self._ns.data)]

    async def create(self, key: str, content: Mapping[str, Any], deployment_id: str) -> Deployment:
        """Version 1; `DeploymentConflict` (409) if the key is taken, here or by a concurrent writer."""
        if key in self._ns.data:
            raise _exists(key)
        now = time.time()
        first = Deployment.from_content(key, 1, {**content, "id": deployment_id}, now, now)
        try:
            await self.sync.write(self._ns, key, (first,), _insert(first))
        except (IntegrityError, _Stale):
            raise _exists(key) from None
        return first

    async def update(self, key: str, content: Mapping[str, Any]) -> tuple[Deployment, bool]:
        """A new version unless the content equals the current one's; returns (current, whether it is new)."""
        for _ in range(_ATTEMPTS):
            history = self._ns.data.get(key)
            if history is None:
                raise deployment_not_found(key)
            current = history[-1]
            content = {**content, "id": current.id}
            if content_hash(content) == content_hash(current.content):
                return current, False
            new = Deployment.from_content(key, current.version + 1, content, history[0].created_at, time.time())
            try:
                await self.sync.write(self._ns, key, (*history, new), _insert(new))
            except (IntegrityError, _Stale):  # another worker wrote first: load its version, then decide again
                if self.sync.db is not None:
                    await self.sync.refresh()
                continue
            return new, True
        raise DeploymentConflict(
            f"Deployment '{key}' is being changed concurrently; retry.", code="deployment_conflict"
        )

    async def rollback(self, key: str, version: int) -> Deployment:
        """Make an old version current again, as a new version (history is never rewritten)."""
        old = self.version(key, version)
        if old is None:
            raise deployment_not_found(key) if key not in self._ns.data else deployment_not_found(key, version)
        current = self.get(key)
        assert current is not None
        if content_hash(old.content) == content_hash(current.content):
            return current
        new, _ = await self.update(key, old.content)
        return new

    async def delete(self, key: str) -> bool:
        if key not in self._ns.data:
            return False
        await self.sync.write(self._ns, key, None, _delete(key))
        return True


def _exists(key: str) -> DeploymentConflict:
    return DeploymentConflict(f"Deployment '{key}' already exists.", code="deployment_exists", param="key")


async def load_deployments(conn: AsyncConnection) -> dict[str, History]:
    table = deployment_versions
    rows = (await conn.execute(table.select().order_by(table.c.key, table.c.version))).mappings().all()
    grouped: dict[str, list[Deployment]] = {}
    for row in rows:
        key = str(row["key"])
        found = grouped.setdefault(key, [])
        created = found[0].created_at if found else float(row["created_at"])
        found.append(Deployment.from_content(key, int(row["version"]), row["content"], created, row["created_at"]))
    return {key: tuple(found) for key, found in grouped.items()}


def _insert(deployment: Deployment) -> Statements:
    row = {
        "key": deployment.key,
        "version": deployment.version,
        "content": dict(deployment.content),
        "content_hash": content_hash(deployment.content),
        "created_at": deployment.updated_at,
    }

    async def run(conn: AsyncConnection) -> None:
        table = deployment_versions
        newest = (await conn.execute(sa.select(sa.func.max(table.c.version)).where(table.c.key == row["key"]))).scalar()
        if int(newest or 0) != deployment.version - 1:
            raise _Stale(deployment.key)
        await conn.execute(table.insert(), [row])

    return run


def _delete(key: str) -> Statements:
    async def run(conn: AsyncConnection) -> None:
        await conn.execute(deployment_versions.delete().where(deployment_versions.c.key == key))

    return run
