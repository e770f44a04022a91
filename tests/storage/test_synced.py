"""`StateSync` between two processes' worth of state on one database: two `StateSync`s (two vaults) stand for two
workers or instances. Polling and Redis notification are checked with real SQLite, PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis
import sqlalchemy as sa

from portico.storage.db import Database
from portico.storage.secrets import SecretBox
from portico.storage.synced import StateSync
from portico.storage.tables import state_versions
from portico.storage.vault import Vault

REDIS_URL = "redis://127.0.0.1:6379/0"
DEAD_REDIS = "redis://127.0.0.1:1/0"


def _box() -> SecretBox:
    return SecretBox(base64.urlsafe_b64encode(os.urandom(32)))


async def _versions(db: Database) -> dict[str, int]:
    async with db.begin() as conn:
        return {str(n): int(v) for n, v in (await conn.execute(sa.select(state_versions))).all()}


async def _wait_for(condition: Callable[[], bool], seconds: float) -> float:
    """Seconds until `condition()` held (bounded by `seconds`; fails the test if it never did)."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if condition():
            return time.monotonic() - start
        await asyncio.sleep(0.01)
    pytest.fail(f"not within {seconds} s")


@contextlib.asynccontextmanager
async def two_vaults(
    database: Database, notify: tuple[str | None, str | None] = (None, None), interval: float = 0.1
) -> AsyncIterator[tuple[Vault, Vault]]:
    """Two started vaults (two processes' worth of state) on one database and secret, announcing on `notify`'s
    Redis URLs; both closed on exit."""
    box = _box()
    a, b = (Vault(box, StateSync(database, notify_url=url, interval=interval)) for url in notify)
    for vault in (a, b):
        await vault.sync.start()
    try:
        yield a, b
    finally:
        for vault in (a, b):
            await vault.sync.close()


@pytest.fixture
async def pair(database: Database) -> AsyncIterator[tuple[Vault, Vault]]:
    """Two vaults on one database, polling every 0.1 s, no Redis."""
    async with two_vaults(database) as vaults:
        yield vaults


async def test_a_write_is_read_back_at_once_and_bumps_its_namespace_in_the_database(
    pair: tuple[Vault, Vault], database: Database
) -> None:
    a, _ = pair
    await a.add_key("openai", "sk-one", key_id="vk-1")
    resolved = a.resolve("vk-1")
    assert resolved is not None and resolved.provider == "openai" and resolved.api_key == "sk-one"
    await a.put_config("pc-1", {"provider": "openai"})
    await a.put_config("pc-1", {"provider": "anthropic"})
    assert a.config("pc-1") == {"provider": "anthropic"}
    assert await _versions(database) == {"virtual_keys": 1, "routing_configs": 2}


async def test_the_other_process_sees_a_write_and_a_revocation_by_polling(pair: tuple[Vault, Vault]) -> None:
    a, b = pair
    reloads = b.sync.reloads
    await a.add_key("openai", "sk-two", key_id="vk-2")
    await _wait_for(lambda: b.resolve("vk-2") is not None, 2)
    assert b.sync.reloads == reloads + 1  # only the namespace that changed was read
    assert b.config("pc-none") is None
    await a.delete_key("vk-2")
    await _wait_for(lambda: b.resolve("vk-2") is None, 2)
    await b.put_config("pc-2", {"provider": "openai"})
    await _wait_for(lambda: a.config("pc-2") == {"provider": "openai"}, 2)


async def test_writes_from_two_processes_in_turn_end_in_the_same_copy(database: Database) -> None:
    """A write that finds someone else's newer version in the database must not claim to be current: its
    process reloads and ends up with both writes, not only its own."""
    box = _box()
    a, b = Vault(box, StateSync(database)), Vault(box, StateSync(database))
    await a.sync.start()
    await b.sync.start()  # no poll task would matter here: refresh() is called by hand
    await a.add_key("openai", "sk-a", key_id="vk-a")
    await b.add_key("openai", "sk-b", key_id="vk-b")
    assert b.get_key("vk-a") is None  # not yet: b has not looked
    assert await b.sync.refresh()
    assert {k.id for k in b.virtual_keys()} == {"vk-a", "vk-b"}
    assert await a.sync.refresh()
    assert {k.id for k in a.virtual_keys()} == {"vk-a", "vk-b"}
    await a.put_config("pc-a", {"provider": "openai"})
    assert await b.delete_config("pc-a")  # unknown to b's copy until it looked: deleting looks first
    assert not await b.delete_config("pc-never")
    await a.sync.close()
    await b.sync.close()


async def test_an_unreachable_database_keeps_the_last_copy_logs_once_and_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path / 'portico.db'}"
    db = Database(url)
    await db.migrate()
    writer = Vault(_box(), StateSync(db))
    await writer.add_key("openai", "sk-kept", key_id="vk-kept")

    reader_sync = StateSync(db, interval=0.05)
    reader = Vault(writer.box, reader_sync)
    await reader_sync.start()
    assert reader.get_key("vk-kept") is not None

    reader_sync.db = Database("postgresql://nobody@127.0.0.1:1/none")  # the database goes away
    caplog.set_level(logging.WARNING, "portico.storage.sync")
    await asyncio.sleep(0.4)  # several polls fail
    assert reader.get_key("vk-kept") is not None
    unreachable = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(unreachable) == 1, caplog.text

    await writer.delete_key("vk-kept")
    await reader_sync.db.close()
    reader_sync.db = db  # and comes back
    await _wait_for(lambda: reader.get_key("vk-kept") is None, 2)
    assert any("reachable again" in r.getMessage() for r in caplog.records)
    await reader_sync.close()
    await db.close()


async def test_start_with_the_database_down_does_not_raise_and_loads_once_it_answers(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'later.db'}")  # not migrated: no tables yet, every read fails
    sync = StateSync(db, interval=0.05)
    vault = Vault(_box(), sync)
    await sync.start()
    assert vault.virtual_keys() == []
    await db.migrate()
    other = Vault(vault.box, StateSync(db))
    await other.add_key("openai", "sk-late", key_id="vk-late")
    await _wait_for(lambda: vault.get_key("vk-late") is not None, 2)
    await sync.close()
    await db.close()


async def test_without_a_database_the_vault_lives_in_this_process() -> None:
    vault = Vault(_box())
    await vault.sync.start()
    await vault.add_key("openai", "sk-local", key_id="vk-local")
    assert vault.resolve("vk-local") is not None
    assert await vault.sync.refresh()  # nothing to read, nothing lost
    assert await vault.delete_key("vk-local") and vault.resolve("vk-local") is None
    assert not await vault.delete_key("vk-local")
    await vault.sync.close()


def test_a_namespace_is_registered_once() -> None:
    sync = StateSync(None)
    Vault(_box(), sync)
    with pytest.raises(ValueError, match="virtual_keys"):
        Vault(_box(), sync)


async def _redis_or_skip() -> None:
    client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        await client.ping()
    except (OSError, aioredis.RedisError) as exc:
        pytest.skip(f"Redis at 127.0.0.1:6379 does not answer ({exc})")
    finally:
        await client.aclose()


async def test_redis_notification_carries_a_change_without_waiting_for_the_poll(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    await _redis_or_skip()
    caplog.set_level(logging.WARNING, "portico.storage.sync")
    # An hour between polls: only the notification can deliver the change within the second.
    async with two_vaults(database, (REDIS_URL, REDIS_URL), interval=3600) as (a, b):
        await asyncio.sleep(1.5)  # both subscribers are listening, and an idle subscription is not an outage
        key_id = f"vk-{secrets.token_hex(4)}"
        await a.add_key("openai", "sk-pubsub", key_id=key_id)
        took = await _wait_for(lambda: b.get_key(key_id) is not None, 1.0)
        await a.delete_key(key_id)
        took_revoke = await _wait_for(lambda: b.get_key(key_id) is None, 1.0)
        assert not caplog.records, caplog.text
        print(f"redis propagation ({database.backend}): add {took * 1000:.0f} ms, revoke {took_revoke * 1000:.0f} ms")


async def test_an_unreachable_redis_leaves_writes_working_and_the_poll_carrying_them(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "portico.storage.sync")
    async with two_vaults(database, (DEAD_REDIS, DEAD_REDIS)) as (a, b):
        await a.add_key("openai", "sk-poll", key_id="vk-poll")
        await a.add_key("openai", "sk-poll", key_id="vk-poll-2")
        assert a.get_key("vk-poll") is not None
        await _wait_for(lambda: b.get_key("vk-poll-2") is not None, 1.0)
        unreachable = [r for r in caplog.records if "redis unreachable" in r.getMessage()]
        assert 1 <= len(unreachable) <= 2, caplog.text  # once per process


class RedisProxy:
    """A TCP proxy in front of the real Redis that the test can cut (every connection dropped, new ones refused)
    and restore, to stand for a Redis restart or a network blip."""

    def __init__(self) -> None:
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def down(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        self._writers.clear()
        await self._server.wait_closed()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", 6379)
        self._writers += [writer, upstream_writer]
        pipes = [
            asyncio.create_task(self._pipe(reader, upstream_writer)),
            asyncio.create_task(self._pipe(upstream_reader, writer)),
        ]
        self._tasks.update(pipes)
        await asyncio.gather(*pipes, return_exceptions=True)
        self._tasks.difference_update(pipes)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, RuntimeError):
            pass
        finally:
            writer.close()


async def test_after_a_redis_outage_the_subscriber_catches_up_and_listens_again(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """A notification published while the subscriber was cut off is lost; on reconnecting it re-reads the
    versions, so the change arrives anyway, and later notifications arrive as before."""
    await _redis_or_skip()
    caplog.set_level(logging.WARNING, "portico.storage.sync")
    proxy = RedisProxy()
    await proxy.up()
    try:
        # An hour between polls: only a notification, or the catch-up after reconnecting, delivers a change.
        async with two_vaults(database, (REDIS_URL, proxy.url), interval=3600) as (writer, reader):
            await asyncio.sleep(0.3)
            await proxy.down()
            await writer.add_key("openai", "sk-lost", key_id="vk-during-outage")  # its notification is lost
            await asyncio.sleep(0.5)
            assert reader.get_key("vk-during-outage") is None
            assert [r.getMessage() for r in caplog.records if "redis unreachable" in r.getMessage()], caplog.text
            await proxy.up()
            caught_up = await _wait_for(lambda: reader.get_key("vk-during-outage") is not None, 3.0)
            assert any("notifications are back" in r.getMessage() for r in caplog.records), caplog.text
            await asyncio.sleep(0.2)
            await writer.delete_key("vk-during-outage")
            revoked = await _wait_for(lambda: reader.get_key("vk-during-outage") is None, 1.0)
            print(f"caught up {caught_up * 1000:.0f} ms after Redis returned; then notified in {revoked * 1000:.0f} ms")
    finally:
        await proxy.down()
