"""Stored, versioned deployments (`DeploymentStore`): every version in memory, kept in step across workers.

The request path calls `get()`, a dict lookup with no I/O. A write adds one immutable row to `deployment_versions`
(storage/versioned.py), so two writers racing on one key cannot both write the same version. A rollback writes the
old version's content as a new version; deleting removes them all.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import RowMapping

from portico.core.deployments import Deployment, content_hash
from portico.core.errors import NotFound, RequestError
from portico.storage.synced import StateSync
from portico.storage.tables import deployment_versions
from portico.storage.versioned import VersionedRows, VersionTable

History = tuple[Deployment, ...]
"""Every version of one deployment, oldest first."""


class DeploymentConflict(RequestError):
    http_status = 409
    type = "conflict_error"


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
        self._rows = VersionedRows(self.sync, "deployments", _TABLE)

    def get(self, key: str) -> Deployment | None:
        """The current version; the request path's lookup (a dict read, no I/O)."""
        history = self._rows.data.get(key)
        return history[-1] if history else None

    async def find(self, key: str) -> Deployment | None:
        """The current version for an admin path: if this copy has none, the database is read first (the key may
        have been created through another worker since the last poll)."""
        if key not in self._rows.data:
            await self.sync.catch_up()
        return self.get(key)

    def versions(self, key: str) -> History | None:
        return self._rows.data.get(key)

    def version(self, key: str, version: int) -> Deployment | None:
        return next((d for d in self._rows.data.get(key) or () if d.version == version), None)

    def current(self) -> list[Deployment]:
        """The current version of every deployment, by key."""
        data = self._rows.data
        return [data[key][-1] for key in sorted(data)]

    async def create(self, key: str, content: Mapping[str, Any], deployment_id: str) -> Deployment:
        """Version 1; `DeploymentConflict` (409) if the key is taken, here or by a concurrent writer."""
        now = time.time()
        return await self._rows.create(key, Deployment.from_content(key, 1, {**content, "id": deployment_id}, now, now))

    async def update(self, key: str, content: Mapping[str, Any]) -> tuple[Deployment, bool]:
        """A new version unless the content equals the current one's; returns (current, whether it is new)."""
        return await self._rows.update(key, lambda history: _successor(key, history, content))

    async def rollback(self, key: str, version: int) -> Deployment:
        """Make an old version current again, as a new version (history is never rewritten). Decided on the
        stored history (`update` catches up first), never on a copy that has not seen the latest version."""

        def successor(history: History) -> Deployment | None:
            old = next((d for d in history if d.version == version), None)
            if old is None:
                raise deployment_not_found(key, version)
            return _successor(key, history, old.content)

        new, _ = await self._rows.update(key, successor)
        return new

    async def delete(self, key: str) -> bool:
        return await self._rows.delete(key)


def _successor(key: str, history: History, content: Mapping[str, Any]) -> Deployment | None:
    """The version after `history` holding `content` (the deployment keeps its id), or None if it is unchanged."""
    current = history[-1]
    kept_id = {**content, "id": current.id}
    if content_hash(kept_id) == content_hash(current.content):
        return None
    return Deployment.from_content(key, current.version + 1, kept_id, history[0].created_at, time.time())


def _from_row(key: str, row: RowMapping, earlier: Sequence[Deployment]) -> Deployment:
    created = earlier[0].created_at if earlier else float(row["created_at"])
    return Deployment.from_content(key, int(row["version"]), row["content"], created, row["created_at"])


def _to_row(deployment: Deployment) -> dict[str, Any]:
    return {
        "key": deployment.key,
        "version": deployment.version,
        "content": dict(deployment.content),
        "content_hash": content_hash(deployment.content),
        "created_at": deployment.updated_at,
    }


_TABLE = VersionTable(
    deployment_versions,
    "key",
    _from_row,
    _to_row,
    exists=lambda key: DeploymentConflict(f"Deployment '{key}' already exists.", code="deployment_exists", param="key"),
    missing=deployment_not_found,
    busy=lambda key: DeploymentConflict(
        f"Deployment '{key}' is being changed concurrently; retry.", code="deployment_conflict"
    ),
)
