"""The connection every store talks to, and the embedded SQLite engine behind it: sync SQLAlchemy on a few threads.

`Connection` is all a store uses of a database connection: `execute`, `exec_driver_sql` and `run_sync`, inside
the transaction `Database.begin()` opened. PostgreSQL gets SQLAlchemy's async engine on asyncpg, which has it.
SQLite gets `ThreadedEngine`: SQLAlchemy's plain engine on the standard `sqlite3` driver, each statement handed
to the thread of its connection, which runs it and buffers its rows.

Why not SQLAlchemy's async engine on aiosqlite for SQLite too: importing `sqlalchemy.ext.asyncio` imports the
ORM (for its sessions, which Portico never uses), 7.9 MiB resident in a gateway whose bare proxy ceiling is
44 MiB and whose budget is 80; and aiosqlite puts a greenlet switch and a second thread's queue in front of
every statement, where this is one hand-off. Nothing on the request path reads the database: these are admin
reads and writes, state-sync polls and the knowledge stores (the call log has its own writer,
`sqlite_writer.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.sql.base import Executable

if TYPE_CHECKING:
    Rows = sa.Result[*tuple[Any, ...]]
    """A statement's result, rows of any width (`sa.Result[Any]` would type each row as one value)."""

P = ParamSpec("P")
T = TypeVar("T")


class Connection(Protocol):
    """A connection inside a transaction, as the stores see it (SQLAlchemy's `AsyncConnection` is one)."""

    @property
    def dialect(self) -> sa.Dialect: ...

    async def execute(self, statement: Executable, parameters: Any = None) -> Rows: ...

    async def exec_driver_sql(self, statement: str, parameters: Any = None) -> Rows: ...

    async def run_sync(
        self, fn: Callable[Concatenate[sa.Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T: ...


class ThreadedEngine:
    """A sync `sa.Engine` used from the event loop. Each checked-out connection gets a thread of its own for as
    long as it is out (a lane, kept for the next one): its statements run there in order, one hand-off each.

    Why a thread per connection and not one shared pool of threads: a statement waiting for SQLite's write lock
    holds its thread, and the holder of that lock needs a thread for its next statement. With a shared pool the
    waiters can take every thread and the holder waits for them until their busy timeout (seen: 5 s stalls and
    "database is locked"). No more lanes run than the pool has connections, so a checkout never waits either."""

    def __init__(self, engine: sa.Engine, *, connections: int) -> None:
        """`connections`: the most the engine's pool hands out at once (its size plus its overflow)."""
        self.sync_engine = engine
        self.connections = connections
        self._free = asyncio.Semaphore(connections)
        self._idle: list[ThreadPoolExecutor] = []

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[ThreadedConnection]:
        """A connection in a transaction: committed when the block ends, rolled back (and given back) when it
        raises or is cancelled. The ending runs even if the waiting task is cancelled again meanwhile."""
        async with self._free:
            lane = self._idle.pop() if self._idle else ThreadPoolExecutor(1, thread_name_prefix="portico-db")
            try:
                connection = ThreadedConnection(await _connect(self.sync_engine, lane), lane)
                try:
                    yield connection
                except BaseException:
                    await connection.finish(commit=False)
                    raise
                await connection.finish(commit=True)
            finally:
                self._idle.append(lane)  # a lane still ending a cancelled call runs the next one after it

    async def dispose(self, close: bool = True) -> None:
        """`close=False` forgets the pooled connections without touching them (a stalled one included); their
        holders close them when they give them back."""
        if not close:
            self.sync_engine.dispose(close=False)
            return
        await asyncio.to_thread(self.sync_engine.dispose)
        lanes, self._idle = self._idle, []
        for lane in lanes:
            lane.shutdown(wait=False)


async def _connect(engine: sa.Engine, lane: ThreadPoolExecutor) -> sa.Connection:
    """A checkout on `lane`; one whose waiter was cancelled meanwhile is given back when it arrives."""
    checkout = asyncio.get_running_loop().run_in_executor(lane, engine.connect)
    try:
        return await asyncio.shield(checkout)
    except asyncio.CancelledError:
        checkout.add_done_callback(lambda done: _give_back(done, lane))
        raise


def _give_back(checkout: asyncio.Future[sa.Connection], lane: ThreadPoolExecutor) -> None:
    if not checkout.cancelled() and checkout.exception() is None:
        lane.submit(checkout.result().close)


class ThreadedConnection:
    """One checked-out connection and its lane: its calls run one after another on that one thread (sqlite3
    objects stay on the thread that uses them; a call whose waiter was cancelled finishes before the next)."""

    __slots__ = ("_connection", "_lane")

    def __init__(self, connection: sa.Connection, lane: ThreadPoolExecutor) -> None:
        self._connection = connection
        self._lane = lane

    @property
    def dialect(self) -> sa.Dialect:
        return self._connection.dialect

    def _call(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        return asyncio.get_running_loop().run_in_executor(self._lane, fn, self._connection, *args)

    async def execute(self, statement: Executable, parameters: Any = None) -> Rows:
        return await self._call(_execute, statement, parameters)

    async def exec_driver_sql(self, statement: str, parameters: Any = None) -> Rows:
        return await self._call(_execute_driver_sql, statement, parameters)

    async def run_sync(self, fn: Callable[Concatenate[sa.Connection, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._call(lambda connection: fn(connection, *args, **kwargs))

    async def finish(self, *, commit: bool) -> None:
        """Commit (or roll back) and give the connection back to the pool, shielded from a second cancel."""
        await asyncio.shield(self._call(_commit_and_close if commit else _close))


def _buffered(result: sa.CursorResult[Any]) -> Rows:
    """Rows fetched on the thread that ran the statement (a sqlite3 cursor is read where it was made); a
    statement without rows keeps its result, whose `rowcount` is already known."""
    return result.freeze()() if result.returns_rows else result


def _execute(connection: sa.Connection, statement: Executable, parameters: Any) -> Rows:
    return _buffered(connection.execute(statement, parameters))


def _execute_driver_sql(connection: sa.Connection, statement: str, parameters: Any) -> Rows:
    return _buffered(connection.exec_driver_sql(statement, parameters))


def _commit_and_close(connection: sa.Connection) -> None:
    try:
        connection.commit()
    finally:
        connection.close()


def _close(connection: sa.Connection) -> None:
    connection.close()  # an open transaction is rolled back by the pool
