"""`PromptLibrary` on a real database (SQLite file and PostgreSQL): versions survive a restart unchanged, and two
processes writing one prompt never both write the same version; the stale one reloads and builds on the other's."""

from __future__ import annotations

from typing import Any

import pytest

from portico.core.errors import NotFound
from portico.core.prompts import PromptDraft
from portico.storage.db import Database
from portico.storage.prompts import PromptExists, PromptLibrary
from portico.storage.synced import StateSync


def draft(text: str, **fields: Any) -> PromptDraft:
    return PromptDraft(messages=({"role": "system", "content": text},), **fields)


async def worker(db: Database) -> PromptLibrary:
    library = PromptLibrary(StateSync(db))
    assert await library.sync.refresh()
    return library


async def test_versions_survive_a_restart_unchanged(database: Database) -> None:
    first = await worker(database)
    one = await first.create(draft("v1", parameters={"temperature": 0.2}, tags=("a",)), "support")
    two, changed = await first.update("support", draft("v2", template_engine="jinja", variables={"x": 1}))
    assert changed and two.version == 2
    same, changed = await first.update("support", draft("v2", template_engine="jinja", variables={"x": 1}))
    assert not changed and same == two
    restarted = await worker(database)
    assert restarted.versions("support") == (one, two)
    assert restarted.get("support") == two and restarted.get("support", 1) == one
    assert restarted.get("support", 3) is None and restarted.get("other") is None


async def test_a_stale_worker_builds_on_the_version_it_had_not_seen(database: Database) -> None:
    a, b = await worker(database), await worker(database)
    await a.create(draft("v1"), "shared")
    await b.sync.refresh()
    await b.update("shared", draft("from b"))
    latest, changed = await a.update("shared", draft("from a"))  # a still believes version 1 is the latest
    assert changed and latest.version == 3
    await b.sync.refresh()
    assert [p.messages[0]["content"] for p in b.versions("shared") or ()] == ["v1", "from b", "from a"]
    assert a.versions("shared") == b.versions("shared")


async def test_two_workers_creating_one_id_make_one_prompt(database: Database) -> None:
    a, b = await worker(database), await worker(database)
    await a.create(draft("a"), "same")
    with pytest.raises(PromptExists):
        await b.create(draft("b"), "same")  # b has not loaded a's prompt: the database refuses it
    await b.sync.refresh()
    loaded = b.get("same")
    assert loaded is not None and loaded.messages[0]["content"] == "a"


async def test_delete_removes_every_version(database: Database) -> None:
    a = await worker(database)
    await a.create(draft("v1"), "gone")
    await a.update("gone", draft("v2"))
    assert await a.delete("gone") and not await a.delete("gone")
    assert (await worker(database)).versions("gone") is None
    with pytest.raises(NotFound):
        await a.update("gone", draft("v3"))
    again = await a.create(draft("new"), "gone")
    assert again.version == 1
