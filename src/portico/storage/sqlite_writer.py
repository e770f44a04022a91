"""The call log's writer for a SQLite file: each batch is one hand-off to one thread that owns its connection.

Why not the database's engine (`connection.py`): there every statement is a round trip between a thread and
the event loop, and a saturated loop answers each only after a full turn over every ready request. Measured at
64 connections, ~3,000 requests/s: a batch took 5–8 such trips, the writer managed ~2,200 rows/s, its queue
filled and records were dropped. Here the loop waits once per batch; BEGIN, the inserts, the identity upserts
and COMMIT all run in the writer thread. Reads, migrations and PostgreSQL keep using the engine.

Rows go in as multi-row INSERTs of up to 32 rows, not `executemany`: the driver releases and retakes the GIL
around every statement step, and with the event loop busy on the same core each of those hand-offs is a
context switch. One step per row cost ~16 µs of CPU per row in the thread alone (more at 64 connections, when
the loop never idles); one per 50 rows, ~9 µs.

A batch is cut into statements of power-of-two row counts (32, 16, 8, 4, 2, 1), so the connection only ever
prepares six INSERTs. With one per row count there were up to fifty: 3.9 MiB of compiled statements (half of
the gateway's growth under load), and a re-prepare (~1.5 M instructions for 50 rows) whenever they crowded each
other out of the statement cache.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import chain
from typing import Any

from portico.storage.db import sqlite_pragmas

_UPSERT_IDENTITY = (
    "INSERT INTO identities (id, first_seen_at, last_seen_at, request_count) VALUES (?, ?, ?, ?) "
    "ON CONFLICT(id) DO UPDATE SET last_seen_at = max(identities.last_seen_at, excluded.last_seen_at), "
    "request_count = identities.request_count + excluded.request_count"
)


_NOTHING: dict[object, None] = {}
_AS_NULL: Callable[[object], None] = _NOTHING.get
"""A C-level callable that returns None for any argument: the cheapest adapter there is for `None`."""


def register_fast_adapters() -> None:
    """Let the driver bind `None` and `bool` without its adaptation protocol.

    sqlite3 binds exact int, float and str directly, but sends every other value through its adapter lookup,
    which for a type without an adapter fails two attribute lookups and formats an AttributeError each time.
    A call-log row has about a dozen None and two bool values: that was 8 of the 17 µs per row. A registered
    adapter is found by one dict lookup instead. The values bound are unchanged (NULL, 0/1), so the adapters
    being process-wide changes nothing for any other SQLite user. Called once, by `app.tune_process()`."""
    sqlite3.register_adapter(type(None), _AS_NULL)
    sqlite3.register_adapter(bool, int)


ROWS_PER_INSERT = 32


class SQLiteBatchWriter:
    """Hands each batch to its lane (one thread, one connection). A lane that stalls is abandoned, not waited
    for: the next batch opens a new one, and the old thread closes its connection when its call returns."""

    def __init__(
        self, path: str, table: str, columns: Sequence[str], *, busy_seconds: Callable[[], float] = lambda: 5.0
    ) -> None:
        self._path = path
        self._busy_seconds = busy_seconds
        """Read at each connect: the database's deadlines may be set after this writer is built."""
        self._insert_head = f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
        self._row_marks = "(" + ", ".join("?" for _ in columns) + ")"
        self._width = len(columns)
        self._statements: dict[int, str] = {}
        self._lane: _Lane | None = None

    async def write(self, rows: Sequence[Sequence[Any]], identities: Sequence[tuple[Any, ...]]) -> None:
        lane = self._lane
        if lane is None:
            lane = self._lane = _Lane(self)
        await asyncio.get_running_loop().run_in_executor(lane.executor, lane.write, rows, identities)

    def abandon(self) -> None:
        """Give up on the current lane without waiting for it (it may be stuck in a write)."""
        lane, self._lane = self._lane, None
        if lane is not None:
            lane.executor.submit(lane.close)
            lane.executor.shutdown(wait=False)

    async def close(self) -> None:
        lane, self._lane = self._lane, None
        if lane is not None:
            await asyncio.get_running_loop().run_in_executor(lane.executor, lane.close)
            lane.executor.shutdown(wait=True)

    def insert(self, count: int) -> str:
        """The INSERT for `count` rows, a power of two: each of these few texts is prepared once."""
        sql = self._statements.get(count)
        if sql is None:
            sql = self._statements[count] = self._insert_head + ", ".join([self._row_marks] * count)
        return sql

    def connect(self) -> tuple[sqlite3.Connection, int]:
        """A new connection, and how many rows fit in one INSERT on it."""
        busy = self._busy_seconds()
        conn = sqlite3.connect(self._path, check_same_thread=False, cached_statements=16, timeout=busy)
        sqlite_pragmas(conn, busy_ms=int(busy * 1000))
        limit = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)  # 999 before SQLite 3.32
        fits = max(1, min(ROWS_PER_INSERT, limit // self._width))
        return conn, 1 << (fits.bit_length() - 1)


class _Lane:
    """One writer thread and the connection only it uses."""

    def __init__(self, writer: SQLiteBatchWriter) -> None:
        self.writer = writer
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="portico-calllog")
        self.conn: sqlite3.Connection | None = None
        self.rows_per_insert = ROWS_PER_INSERT

    def write(self, rows: Sequence[Sequence[Any]], identities: Sequence[tuple[Any, ...]]) -> None:
        conn = self.conn
        if conn is None:
            conn, self.rows_per_insert = self.writer.connect()
            self.conn = conn
        try:
            with conn:  # one transaction: committed on success, rolled back on error
                start, total, most = 0, len(rows), self.rows_per_insert
                while start < total:
                    count = min(most, 1 << ((total - start).bit_length() - 1))
                    conn.execute(self.writer.insert(count), list(chain.from_iterable(rows[start : start + count])))
                    start += count
                if identities:
                    conn.executemany(_UPSERT_IDENTITY, identities)
        except sqlite3.IntegrityError:
            raise  # the connection is fine: the caller filters out what is already stored
        except sqlite3.Error:
            self.close()  # a broken connection is reopened by the next batch
            raise

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.close()
