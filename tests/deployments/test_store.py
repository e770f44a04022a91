"""`DeploymentStore` on a real database (SQLite file and PostgreSQL): versions survive a restart, a stale worker
builds on the version it had not seen, a taken key is refused by the database, and routing rules pick variants."""

from __future__ import annotations

from typing import Any

import pytest

from portico.core.deployments import Condition, Deployment
from portico.storage.db import Database
from portico.storage.deployments import DeploymentConflict, DeploymentStore
from portico.storage.synced import StateSync
from tests.storage.conftest import database, pg_schema_url

__all__ = ["database", "pg_schema_url"]


def content(model: str, **extra: Any) -> dict[str, Any]:
    variant = {"name": "default", "model": model, "prompt": {"messages": [{"role": "user", "content": "hi"}]}}
    return {"description": "", "variants": [variant], "routing": [], "default_variant": "default", **extra}


async def worker(db: Database) -> DeploymentStore:
    store = DeploymentStore(StateSync(db))
    assert await store.sync.refresh()
    return store


async def test_versions_survive_a_restart_and_rollback_adds_one(database: Database) -> None:
    first = await worker(database)
    one = await first.create("support", content("openai/a"), "01ID")
    two, changed = await first.update("support", content("openai/b"))
    assert changed and two.version == 2 and two.id == "01ID" and two.created_at == one.created_at
    same, changed = await first.update("support", content("openai/b"))
    assert not changed and same == two
    three = await first.rollback("support", 1)
    assert three.version == 3 and three.variants == one.variants
    restarted = await worker(database)
    assert [d.version for d in restarted.versions("support") or ()] == [1, 2, 3]
    current = restarted.get("support")
    assert current is not None and current.variant("default").model == "openai/a"


async def test_a_stale_worker_builds_on_the_version_it_had_not_seen(database: Database) -> None:
    a, b = await worker(database), await worker(database)
    await a.create("shared", content("openai/v1"), "01ID")
    await b.sync.refresh()
    await b.update("shared", content("openai/from-b"))
    latest, changed = await a.update("shared", content("openai/from-a"))  # a still believes v1 is current
    assert changed and latest.version == 3
    await b.sync.refresh()
    assert [d.variant("default").model for d in b.versions("shared") or ()] == [
        "openai/v1",
        "openai/from-b",
        "openai/from-a",
    ]


async def test_two_workers_creating_one_key_make_one_deployment(database: Database) -> None:
    a, b = await worker(database), await worker(database)
    await a.create("same", content("openai/a"), "01A")
    with pytest.raises(DeploymentConflict):
        await b.create("same", content("openai/b"), "01B")
    assert await b.delete("same") is True  # b has not polled yet: the delete reads the database first
    await a.sync.refresh()
    assert a.get("same") is None


async def test_a_rollback_on_a_worker_that_has_not_seen_the_latest_version_writes_it(database: Database) -> None:
    """The CI flake of test_workers_e2e: the rollback landed on the worker whose poll had not yet loaded v2, which
    compared v1 with its stale current (v1), answered "unchanged" and wrote nothing; every worker kept v2."""
    a, b = await worker(database), await worker(database)
    await a.create("greeter", content("openai/model-one"), "01ID")
    await b.sync.refresh()
    await a.update("greeter", content("openai/model-two"))  # b has not polled since
    rolled = await b.rollback("greeter", 1)
    assert rolled.version == 3 and rolled.variant("default").model == "openai/model-one"
    await a.sync.refresh()
    for store in (a, b):
        current = store.get("greeter")
        assert current is not None and current.version == 3
    same, changed = await a.update("greeter", content("openai/model-one"))
    assert not changed and same.version == 3
    four, changed = await b.update("greeter", content("openai/model-two"))  # b's copy is current again
    assert changed and four.version == 4


async def test_an_update_equal_to_a_stale_current_is_still_written(database: Database) -> None:
    a, b = await worker(database), await worker(database)
    await a.create("k", content("openai/one"), "01ID")
    await b.sync.refresh()
    await a.update("k", content("openai/two"))
    latest, changed = await b.update("k", content("openai/one"))  # equal to b's stale current, not the stored one
    assert changed and latest.version == 3


async def test_a_key_created_through_another_worker_can_be_updated_at_once(database: Database) -> None:
    a, b = await worker(database), await worker(database)
    await a.create("fresh", content("openai/one"), "01ID")
    assert await b.find("fresh") is not None  # b had not polled: find reads the database
    latest, changed = await b.update("fresh", content("openai/two"))
    assert changed and latest.version == 2


@pytest.mark.parametrize(
    ("condition", "context", "matches"),
    [
        (Condition("tier", "eq", "gold"), {"tier": "gold"}, True),
        (Condition("tier", "eq", "gold"), {"tier": "silver"}, False),
        (Condition("n", "eq", 1), {"n": True}, False),
        (Condition("n", "eq", 1), {"n": 1.0}, True),
        (Condition("tier", "in", ["a", "b"]), {"tier": "b"}, True),
        (Condition("tier", "in", ["a", "b"]), {}, False),
        (Condition("beta", "exists", True), {"beta": None}, True),
        (Condition("beta", "exists", False), {"beta": None}, False),
        (Condition("beta", "exists", False), {}, True),
    ],
)
def test_conditions(condition: Condition, context: dict[str, Any], matches: bool) -> None:
    assert condition.matches(context) is matches


def test_the_first_matching_rule_wins_else_the_default() -> None:
    variants = [{"name": n, "model": f"openai/{n}", "prompt": {"messages": []}} for n in ("a", "b", "c")]
    routing = [
        {"when": {"x": 1, "y": {"in": [1, 2]}}, "variant": "b"},
        {"when": {"x": {"eq": 1}}, "variant": "c"},
    ]
    deployment = Deployment.from_content(
        "k", 1, {"variants": variants, "routing": routing, "default_variant": "a"}, 0, 0
    )
    assert deployment.variant_for({"x": 1, "y": 2}).name == "b"
    assert deployment.variant_for({"x": 1, "y": 3}).name == "c"
    assert deployment.variant_for({"y": 2}).name == "a"
    assert deployment.variant_for(None).name == "a"
