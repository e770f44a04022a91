"""The async database behind `storage.url`: embedded SQLite (aiosqlite, WAL) or PostgreSQL (asyncpg).

`Database.migrate()` brings the schema to the newest Alembic revision shipped in `storage/migrations/`; it is
safe to run from several workers at once. Nothing here knows what the tables hold (`repos.py` does).
On PostgreSQL, `?schema=name` in the URL keeps every Portico table (Alembic's too) in that schema.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

log = logging.getLogger("portico.storage")

MIGRATIONS = Path(__file__).parent / "migrations"
Backend = Literal["sqlite", "postgresql"]
_MIGRATION_LOCK = 0x706F7274  # a fixed key for pg_advisory_xact_lock, so concurrent workers migrate one at a time
_VERSION_TABLE = "alembic_version"
_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def async_url(url: str) -> tuple[URL, Backend]:
    """`sqlite:///path` → `sqlite+aiosqlite`, `postgresql://` (or `postgres://`) → `postgresql+asyncpg`."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError:
        raise ValueError("storage.url must look like sqlite:///path or postgresql://host/db") from None
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "sqlite" and driver in ("", "aiosqlite"):
        return parsed.set(drivername="sqlite+aiosqlite"), "sqlite"
    if backend == "postgresql" and driver in ("", "asyncpg"):
        return parsed.set(drivername="postgresql+asyncpg"), "postgresql"
    raise ValueError(f"storage.url: unsupported database {parsed.drivername!r} (use sqlite:/// or postgresql://)")


def is_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"


class Database:
    """One engine for the process."""

    def __init__(self, url: str) -> None:
        self.url, self.backend = async_url(url)
        self.schema: str | None = None
        if self.backend == "postgresql" and "schema" in self.url.query:
            self.schema = str(self.url.query["schema"])
            self.url = self.url.difference_update_query(["schema"])
            if not _SCHEMA_NAME.match(self.schema):
                raise ValueError("storage.url: ?schema= must be a plain identifier (letters, digits, _)")
        self.memory = self.backend == "sqlite" and is_memory(self.url)
        self.ready = False
        self._lock = asyncio.Lock() if self.memory else None
        self.engine = self._create_engine()

    def _create_engine(self) -> AsyncEngine:
        if self.backend == "postgresql":
            connect_args: dict[str, Any] = {"server_settings": {"search_path": self.schema}} if self.schema else {}
            try:
                return create_async_engine(self.url, pool_pre_ping=True, connect_args=connect_args)
            except ModuleNotFoundError:
                raise ValueError("storage.url names PostgreSQL: install portico[postgres] (asyncpg)") from None
        if self.memory:
            engine = create_async_engine(self.url, poolclass=StaticPool, connect_args={"check_same_thread": False})
        else:
            engine = create_async_engine(self.url)
        sa.event.listen(engine.sync_engine, "connect", self._sqlite_pragmas)
        return engine

    def _sqlite_pragmas(self, dbapi_connection: Any, _record: Any) -> None:
        sqlite_pragmas(dbapi_connection, memory=self.memory)

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """A connection inside a transaction, committed on exit. An in-memory database has one connection, so
        its users take turns."""
        async with contextlib.AsyncExitStack() as stack:
            if self._lock is not None:
                await stack.enter_async_context(self._lock)
            yield await stack.enter_async_context(self.engine.begin())

    async def migrate(self, *, attempts: int = 3) -> None:
        """Upgrade to the newest revision, safely from several workers at once: one migrates while the others
        wait (an flock on `<file>.migrate.lock` for SQLite, an advisory lock for PostgreSQL) and then find the
        schema current. A try that fails anyway (a database busy for longer than its timeout) is retried."""
        async with contextlib.AsyncExitStack() as stack:
            if self.backend == "sqlite" and not self.memory and self.url.database:
                Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
                if await self._current_revision() != head_revision():
                    lock = await asyncio.to_thread(_flock, Path(f"{self.url.database}.migrate.lock"))
                    stack.callback(lock.close)
            await self._migrate(attempts)
        self.ready = True

    async def _migrate(self, attempts: int) -> None:
        if await self._current_revision() == head_revision():
            return
        for attempt in range(1, attempts + 1):
            try:
                async with self.begin() as conn:
                    if self.backend == "postgresql":
                        await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
                        if self.schema:
                            await conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'))
                    await conn.run_sync(_create_or_upgrade)
            except Exception:
                if attempt == attempts:
                    raise
                log.warning("storage migration failed (try %d of %d); retrying", attempt, attempts, exc_info=True)
                await asyncio.sleep(0.2 * attempt)
            else:
                break

    async def _current_revision(self) -> str | None:
        table = f'"{self.schema}".{_VERSION_TABLE}' if self.schema else _VERSION_TABLE
        try:
            async with self.begin() as conn:
                row = (await conn.execute(sa.text(f"SELECT version_num FROM {table}"))).first()
        except sa.exc.DBAPIError:
            return None  # a new database
        return str(row[0]) if row is not None else None

    async def ping(self) -> bool:
        try:
            async with self.begin() as conn:
                await conn.execute(sa.text("SELECT 1"))
        except Exception:
            log.warning("storage ping failed", exc_info=True)
            return False
        return True

    async def close(self) -> None:
        self.ready = False
        await self.engine.dispose()


def _flock(path: Path) -> IO[bytes]:
    """Block until this process holds an exclusive lock on `path` (released when the returned file is closed)."""
    handle = path.open("ab")
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
    return handle


def sqlite_pragmas(connection: Any, *, memory: bool = False) -> None:
    """Every SQLite connection Portico opens: WAL with NORMAL sync for a file (readers never block the writer,
    fsync only at checkpoints), and a busy timeout so that concurrent writers wait instead of failing."""
    cursor = connection.cursor()
    if not memory:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def head_revision() -> str:
    """The newest migration, read from the revision files (so a database already there never loads Alembic)."""
    revisions: dict[str, str | None] = {}
    for path in (MIGRATIONS / "versions").glob("*.py"):
        text = path.read_text()
        rev = re.search(r'^revision = "([^"]+)"', text, re.M)
        down = re.search(r'^down_revision[^=]*= "([^"]+)"', text, re.M)
        if rev:
            revisions[rev.group(1)] = down.group(1) if down else None
    parents = set(revisions.values())
    heads = [rev for rev in revisions if rev not in parents]
    if len(heads) != 1:
        raise RuntimeError(f"storage migrations must have exactly one head, found {heads}")
    return heads[0]


def _create_or_upgrade(connection: sa.Connection) -> None:
    """A database holding none of Portico's tables is created from `tables.py` and stamped with the newest
    revision (Alembic's recipe for building a database from scratch); only an existing schema goes through the
    migrations. Why: Alembic stays resident once imported, ~10 MiB of a gateway that runs in under 100, so a
    first start should not load it. A test holds both paths to the same schema on SQLite and PostgreSQL."""
    from portico.storage.tables import metadata

    present = set(sa.inspect(connection).get_table_names())
    if present & ({_VERSION_TABLE} | set(metadata.tables)):
        _upgrade(connection)
        return
    metadata.create_all(connection)
    version = sa.Table(
        _VERSION_TABLE,
        sa.MetaData(),
        sa.Column("version_num", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
    )
    version.create(connection)
    connection.execute(version.insert().values(version_num=head_revision()))


def _upgrade(connection: sa.Connection, revision: str = "head") -> None:
    from alembic import command  # ~10 MiB, loaded only when an existing schema changes
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, revision)
