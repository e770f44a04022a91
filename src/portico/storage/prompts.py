"""Stored, versioned prompts (`PromptLibrary`): every version in memory, kept in step across workers by `StateSync`.

The request path calls `get()`, a dict lookup with no I/O. A write adds one immutable row to `prompt_versions`;
the next version number is checked inside the write's transaction, so two workers (or instances) racing on one
prompt cannot both write the same version: the loser reloads and retries, or answers 409 when creating.
Deleting a prompt removes all its versions (a later create with the same id starts again at version 1).
"""

from __future__ import annotations

import secrets
import time

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from portico.core.errors import RequestError
from portico.core.prompts import PromptDraft, StoredPrompt, Version, prompt_not_found
from portico.storage.synced import Statements, StateSync
from portico.storage.tables import prompt_versions

History = tuple[StoredPrompt, ...]
"""Every version of one prompt, oldest first (versions are written 1, 2, 3, ... and never renumbered)."""
_ATTEMPTS = 3


class PromptExists(RequestError):
    http_status = 409
    type = "conflict_error"


class _Stale(Exception):
    """The database holds a newer version than this process has loaded."""


class PromptLibrary:
    """Without a `StateSync` on a database, prompts live in this process only (tests, tools)."""

    def __init__(self, sync: StateSync | None = None) -> None:
        self.sync = sync or StateSync(None)
        self._ns = self.sync.namespace("prompts", load_prompts)

    def get(self, prompt_id: str, version: Version = "latest") -> StoredPrompt | None:
        """The request path's lookup: a dict read, no I/O."""
        history = self._ns.data.get(prompt_id)
        if history is None:
            return None
        if version == "latest":
            return history[-1]
        if 0 < version <= len(history) and history[version - 1].version == version:
            return history[version - 1]
        return next((p for p in history if p.version == version), None)

    def versions(self, prompt_id: str) -> History | None:
        return self._ns.data.get(prompt_id)

    def latest(self) -> list[StoredPrompt]:
        """The latest version of every prompt, by id."""
        return [self._ns.data[key][-1] for key in sorted(self._ns.data)]

    async def create(self, draft: PromptDraft, prompt_id: str | None = None) -> StoredPrompt:
        """Version 1 of a new prompt; `PromptExists` (409) if the id is taken, here or by a concurrent writer."""
        prompt_id = prompt_id or f"prompt_{secrets.token_hex(12)}"
        if prompt_id in self._ns.data:
            raise _exists(prompt_id)
        prompt = StoredPrompt.of(prompt_id, 1, draft, time.time())
        try:
            await self.sync.write(self._ns, prompt_id, (prompt,), _insert(prompt))
        except (IntegrityError, _Stale):
            raise _exists(prompt_id) from None
        return prompt

    async def update(self, prompt_id: str, draft: PromptDraft) -> tuple[StoredPrompt, bool]:
        """A new version unless the content equals the latest's; returns (latest, whether it is new)."""
        for _ in range(_ATTEMPTS):
            history = self._ns.data.get(prompt_id)
            if history is None:
                raise prompt_not_found(prompt_id)
            current = history[-1]
            if draft.content_hash() == current.content_hash:
                return current, False
            prompt = StoredPrompt.of(prompt_id, current.version + 1, draft, time.time())
            try:
                await self.sync.write(self._ns, prompt_id, (*history, prompt), _insert(prompt))
            except (IntegrityError, _Stale):  # another worker wrote first: load its version, then decide again
                await self.sync.refresh()
                continue
            return prompt, True
        raise PromptExists(
            f"Prompt '{prompt_id}' is being changed concurrently; retry.", code="prompt_conflict", param="id"
        )

    async def delete(self, prompt_id: str) -> bool:
        if prompt_id not in self._ns.data:
            return False
        await self.sync.write(self._ns, prompt_id, None, _delete(prompt_id))
        return True


def _exists(prompt_id: str) -> PromptExists:
    return PromptExists(f"Prompt '{prompt_id}' already exists.", code="prompt_exists", param="id")


async def load_prompts(conn: AsyncConnection) -> dict[str, History]:
    table = prompt_versions
    rows = (await conn.execute(table.select().order_by(table.c.prompt_id, table.c.version))).mappings().all()
    grouped: dict[str, list[StoredPrompt]] = {}
    for row in rows:
        prompt_id = str(row["prompt_id"])
        draft = PromptDraft.from_content(row["content"])
        prompt = StoredPrompt.of(prompt_id, int(row["version"]), draft, float(row["created_at"]))
        grouped.setdefault(prompt_id, []).append(prompt)
    return {key: tuple(found) for key, found in grouped.items()}


def _insert(prompt: StoredPrompt) -> Statements:
    row = {
        "prompt_id": prompt.id,
        "version": prompt.version,
        "content": prompt.draft().content(),
        "content_hash": prompt.content_hash,
        "created_at": prompt.created_at,
    }

    async def run(conn: AsyncConnection) -> None:
        table = prompt_versions
        newest = (
            await conn.execute(sa.select(sa.func.max(table.c.version)).where(table.c.prompt_id == prompt.id))
        ).scalar()
        if int(newest or 0) != prompt.version - 1:
            raise _Stale(prompt.id)
        await conn.execute(table.insert(), [row])

    return run


def _delete(prompt_id: str) -> Statements:
    async def run(conn: AsyncConnection) -> None:
        await conn.execute(prompt_versions.delete().where(prompt_versions.c.prompt_id == prompt_id))

    return run
