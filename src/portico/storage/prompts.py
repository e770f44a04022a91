"""Stored, versioned prompts (`PromptLibrary`): every version in memory, kept in step across workers by `StateSync`.

The request path calls `get()`, a dict lookup with no I/O. A write adds one immutable row to `prompt_versions`
(storage/versioned.py), so two workers (or instances) racing on one prompt cannot both write the same version: the
loser reloads and retries, or answers 409 when creating. Deleting a prompt removes all its versions (a later create
with the same id starts again at version 1).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import RowMapping

from portico.core.errors import RequestError
from portico.core.prompts import PromptDraft, StoredPrompt, Version, prompt_not_found
from portico.storage.synced import StateSync
from portico.storage.tables import prompt_versions
from portico.storage.versioned import VersionedRows, VersionTable

History = tuple[StoredPrompt, ...]
"""Every version of one prompt, oldest first (versions are written 1, 2, 3, ... and never renumbered)."""


class PromptExists(RequestError):
    http_status = 409
    type = "conflict_error"


class PromptLibrary:
    """Without a `StateSync` on a database, prompts live in this process only (tests, tools)."""

    def __init__(self, sync: StateSync | None = None) -> None:
        self.sync = sync or StateSync(None)
        self._rows = VersionedRows(self.sync, "prompts", _TABLE)

    def get(self, prompt_id: str, version: Version = "latest") -> StoredPrompt | None:
        """The request path's lookup: a dict read, no I/O."""
        history = self._rows.data.get(prompt_id)
        if history is None:
            return None
        if version == "latest":
            return history[-1]
        if 0 < version <= len(history) and history[version - 1].version == version:
            return history[version - 1]
        return next((p for p in history if p.version == version), None)

    def versions(self, prompt_id: str) -> History | None:
        return self._rows.data.get(prompt_id)

    def latest(self) -> list[StoredPrompt]:
        """The latest version of every prompt, by id."""
        data = self._rows.data
        return [data[key][-1] for key in sorted(data)]

    async def create(self, draft: PromptDraft, prompt_id: str | None = None) -> StoredPrompt:
        """Version 1 of a new prompt; `PromptExists` (409) if the id is taken, here or by a concurrent writer."""
        prompt_id = prompt_id or f"prompt_{secrets.token_hex(12)}"
        return await self._rows.create(prompt_id, StoredPrompt.of(prompt_id, 1, draft, time.time()))

    async def update(self, prompt_id: str, draft: PromptDraft) -> tuple[StoredPrompt, bool]:
        """A new version unless the content equals the latest's; returns (latest, whether it is new)."""

        def successor(history: History) -> StoredPrompt | None:
            current = history[-1]
            if draft.content_hash() == current.content_hash:
                return None
            return StoredPrompt.of(prompt_id, current.version + 1, draft, time.time())

        return await self._rows.update(prompt_id, successor)

    async def delete(self, prompt_id: str) -> bool:
        return await self._rows.delete(prompt_id)


def _from_row(prompt_id: str, row: RowMapping, _: Sequence[StoredPrompt]) -> StoredPrompt:
    draft = PromptDraft.from_content(row["content"])
    return StoredPrompt.of(prompt_id, int(row["version"]), draft, float(row["created_at"]))


def _to_row(prompt: StoredPrompt) -> dict[str, Any]:
    return {
        "prompt_id": prompt.id,
        "version": prompt.version,
        "content": prompt.draft().content(),
        "content_hash": prompt.content_hash,
        "created_at": prompt.created_at,
    }


_TABLE = VersionTable(
    prompt_versions,
    "prompt_id",
    _from_row,
    _to_row,
    exists=lambda prompt_id: PromptExists(f"Prompt '{prompt_id}' already exists.", code="prompt_exists", param="id"),
    missing=prompt_not_found,
    busy=lambda prompt_id: PromptExists(
        f"Prompt '{prompt_id}' is being changed concurrently; retry.", code="prompt_conflict", param="id"
    ),
)
