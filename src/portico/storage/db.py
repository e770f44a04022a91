"""The async database behind `storage.url`: embedded SQLite (WAL, on threads: `connection.py`) or PostgreSQL (asyncpg).

`Database.migrate()` brings the schema to the newest Alembic revision shipped in `storage/migrations/`; it is
safe to run from several workers at once. Nothing here knows what the tables hold (`repos.py` does).
On PostgreSQL, `?schema=name` in the URL keeps every Portico table (Alembic's too) in that schema.
Every connection has deadlines (connect, statement, TCP keepalive): a database that stops answering fails a call,
it never freezes one.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool, StaticPool

from portico.storage.connection import Connection, ThreadedEngine

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    Engine = AsyncEngine | ThreadedEngine

log = logging.getLogger("portico.storage")

MIGRATIONS = Path(__file__).parent / "migrations"
Backend = Literal["sqlite", "postgresql"]
_MIGRATION_LOCK = 0x706F7274  # a fixed key for pg_advisory_xact_lock, so concurrent workers migrate one at a time
_VERSION_TABLE = "alembic_version"
_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_SQLITE_POOL = (5, 10)
"""Connections kept open, and opened beyond them at a busy moment: WAL lets readers run beside the one writer."""


def engine_url(url: str) -> tuple[URL, Backend]:
    """`sqlite:///path` → `sqlite+pysqlite`, `postgresql://` (or `postgres://`) → `postgresql+asyncpg`."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError:
        raise ValueError("storage.url must look like sqlite:///path or postgresql://host/db") from None
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "sqlite" and driver in ("", "pysqlite", "aiosqlite"):  # aiosqlite: the driver before 2026-12
        return parsed.set(drivername="sqlite+pysqlite"), "sqlite"
    if backend == "postgresql" and driver in ("", "asyncpg"):
        return parsed.set(drivername="postgresql+asyncpg"), "postgresql"
    raise ValueError(f"storage.url: unsupported database {parsed.drivername!r} (use sqlite:/// or postgresql://)")


POSTGRES_DRIVER_MISSING = (
    "storage.url names PostgreSQL but its driver, asyncpg, is not installed: pip install 'portico[postgres]'"
)


def schema_problem(url: URL) -> str | None:
    """`?schema=` must be a plain identifier: it is interpolated into DDL."""
    schema = url.query.get("schema")
    if schema is not None and not _SCHEMA_NAME.match(str(schema)):
        return "storage.url: ?schema= must be a plain identifier (letters, digits, _)"
    return None


def is_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"


class Database:
    """One engine for the process."""

    def __init__(self, url: str, *, connect_timeout: float = 5.0, statement_timeout: float = 10.0) -> None:
        self.connect_timeout = connect_timeout
        self.statement_timeout = statement_timeout
        self.url, self.backend = engine_url(url)
        self.schema: str | None = None
        if self.backend == "postgresql" and "schema" in self.url.query:
            problem = schema_problem(self.url)
            if problem:
                raise ValueError(problem)
            self.schema = str(self.url.query["schema"])
            self.url = self.url.difference_update_query(["schema"])
        self.memory = self.backend == "sqlite" and is_memory(self.url)
        self.ready = False
        """True once the schema is in place (`migrate` done)."""
        self.last_error: str | None = None
        self._migrating: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock() if self.memory else None
        self.engine = self._create_engine()

    def _create_engine(self, *, for_migration: bool = False) -> Engine:
        if self.backend == "postgresql":
            try:
                from sqlalchemy.ext.asyncio import create_async_engine  # the ORM comes with it: PostgreSQL only

                pooling: dict[str, Any] = (
                    {"poolclass": NullPool}
                    if for_migration
                    else {"pool_pre_ping": True, "pool_timeout": self.connect_timeout}
                )
                engine = create_async_engine(
                    self.url, connect_args=self._postgres_args(statement_deadline=not for_migration), **pooling
                )
            except ModuleNotFoundError:
                raise ValueError(POSTGRES_DRIVER_MISSING) from None
            sa.event.listen(engine.sync_engine, "connect", _keepalive)
            return engine
        if self.memory:
            sync = sa.create_engine(self.url, poolclass=StaticPool, connect_args={"check_same_thread": False})
            connections = 1
        else:
            size, overflow = _SQLITE_POOL
            sync = sa.create_engine(
                self.url,
                pool_size=size,
                max_overflow=overflow,
                pool_timeout=self.connect_timeout,
                connect_args={"timeout": self.statement_timeout},
            )
            connections = size + overflow
        sa.event.listen(sync, "connect", self._sqlite_pragmas)
        return ThreadedEngine(sync, connections=connections)

    def _postgres_args(self, *, statement_deadline: bool = True) -> dict[str, Any]:
        """asyncpg's connect and per-statement timeouts, and the same statement deadline on the server (so a
        statement that outlives its client's patience is cancelled there too, its locks released). Migrations
        get the connect deadline only: an upgrade of a large table may rightly take minutes."""
        settings: dict[str, str] = {}
        args: dict[str, Any] = {"timeout": self.connect_timeout, "server_settings": settings}
        if statement_deadline:
            settings["statement_timeout"] = str(int(self.statement_timeout * 1000))
            args["command_timeout"] = self.statement_timeout
        if self.schema:
            settings["search_path"] = self.schema
        return args

    async def reset(self) -> None:
        """Forget every pooled connection (a stalled one included, without waiting for it): the next use
        connects afresh. Checked-out connections are closed when their holders give them back."""
        await self.engine.dispose(close=False)

    def _sqlite_pragmas(self, dbapi_connection: Any, _record: Any) -> None:
        sqlite_pragmas(dbapi_connection, memory=self.memory, busy_ms=int(min(self.statement_timeout, 5.0) * 1000))

    @contextlib.asynccontextmanager
    async def begin(self, engine: Engine | None = None) -> AsyncIterator[Connection]:
        """A connection inside a transaction, committed on exit. An in-memory database has one connection, so
        its users take turns."""
        async with contextlib.AsyncExitStack() as stack:
            if self._lock is not None:
                await stack.enter_async_context(self._lock)
            yield await stack.enter_async_context((engine or self.engine).begin())

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

    async def start(self, *, retry_max_seconds: float = 5.0) -> None:
        """Migrate now if the database answers in time; otherwise keep trying in the background (with backoff)
        and return at once, so the gateway serves while the database is away. `ready` says which happened."""
        if await self._try_migrate():
            return
        log.error("storage: the database is not answering (%s); serving without it until it does", self.last_error)
        self._migrating = asyncio.create_task(self._migrate_until_ready(retry_max_seconds), name="portico-migrate")

    async def _try_migrate(self) -> bool:
        """One try: the database must answer within its deadlines (no migration waits on a database that does
        not); the migration itself then has no overall deadline, TCP keepalive notices a peer that vanished."""
        try:
            async with asyncio.timeout(self.connect_timeout + self.statement_timeout):
                async with self.begin() as conn:
                    await conn.execute(sa.text("SELECT 1"))
            await self.migrate(attempts=1)
        except Exception as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"[:300]
            return False
        self.last_error = None
        return True

    async def _migrate_until_ready(self, retry_max_seconds: float) -> None:
        delay, failures = 0.2, 0
        while not await self._try_migrate():
            failures += 1
            if failures % 10 == 0:
                log.warning("storage: still no database after %d tries (%s)", failures, self.last_error)
            await asyncio.sleep(delay)
            delay = min(delay * 2, retry_max_seconds)
        log.warning("storage: the database answers; schema ready after %d failed tries", failures)

    async def _migrate(self, attempts: int) -> None:
        if await self._current_revision() == head_revision():
            return
        engine = self._create_engine(for_migration=True) if self.backend == "postgresql" else self.engine
        try:
            await self._migrate_on(engine, attempts)
        finally:
            if engine is not self.engine:
                await engine.dispose()

    async def _migrate_on(self, engine: Engine, attempts: int) -> None:
        for attempt in range(1, attempts + 1):
            try:
                async with self.begin(engine) as conn:
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
        task, self._migrating = self._migrating, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.engine.dispose()


def _flock(path: Path) -> IO[bytes]:
    """Block until this process holds an exclusive lock on `path` (released when the returned file is closed)."""
    handle = path.open("ab")
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
    return handle


def sqlite_pragmas(connection: Any, *, memory: bool = False, busy_ms: int = 5000) -> None:
    """Every SQLite connection Portico opens: WAL with NORMAL sync for a file (readers never block the writer,
    fsync only at checkpoints), and a busy timeout so that concurrent writers wait (boundedly) instead of failing."""
    cursor = connection.cursor()
    if not memory:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
    cursor.close()


_KEEPALIVE = (("TCP_KEEPIDLE", 10), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3))


def _keepalive(dbapi_connection: Any, _record: Any) -> None:
    """TCP keepalive on the client side of each PostgreSQL connection: a peer that vanished (a dropped link, a
    crashed host) is noticed by the kernel in ~25 s even when no statement is waiting. Best effort: the socket
    is reached through asyncpg's transport, which a future asyncpg may hide."""
    transport = getattr(getattr(dbapi_connection, "driver_connection", None), "_transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for name, value in _KEEPALIVE:
            if hasattr(socket, name):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)


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
    from portico.storage.dialects import postgresql_predicates
    from portico.storage.tables import metadata

    present = set(sa.inspect(connection).get_table_names())
    if present & ({_VERSION_TABLE} | set(metadata.tables)):
        _upgrade(connection)
        return
    if connection.dialect.name == "postgresql":
        postgresql_predicates()
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
