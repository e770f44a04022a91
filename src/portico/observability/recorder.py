"""Writes call records off the hot path: `submit()` only enqueues; a background task writes them in batches.

Nothing is lost to a database outage: records wait in memory, then in the on-disk spool (`spool.py`), and are
written oldest first, once each, when the database answers again. Every write has a deadline; a writer that
stalls is abandoned and replaced. Only a full queue, a full spool or a record the database rejects drops records:
counted (`portico_records_dropped_total`, `stats()`) and logged. `stop()` writes or spools what is queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from portico.core.records import CallRecord, RecordSink
from portico.observability.metrics import Metrics
from portico.observability.outage import Outage, Throttle
from portico.observability.spool import Spool

log = logging.getLogger("portico.recorder")

Outcome = Literal["written", "failed", "rejected"]


class Recorder:
    def __init__(
        self,
        sink: RecordSink,
        *,
        queue_size: int,
        metrics: Metrics | None = None,
        batch_size: int = 200,
        flush_seconds: float = 0.1,
        retry_delay: float = 0.2,
        retry_max_seconds: float = 5.0,
        write_timeout: float = 15.0,
        spool: Spool | None = None,
        spool_after_seconds: float = 1.0,
        warn_every: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sink = sink
        self.metrics = metrics
        self.queue_size = queue_size
        self.batch_size = batch_size
        self.flush_seconds = flush_seconds
        self.write_timeout = write_timeout
        self.spool = spool
        self.spool_after_seconds = spool_after_seconds
        self.dropped = 0
        """Records never queued: the queue was full, or the recorder was not running."""
        self.failed = 0
        """Records queued but not kept: rejected by the database, the spool full, or lost at shutdown."""
        self.written = 0
        self.spooled = 0
        """Records ever moved to the spool."""
        self.stalls = 0
        """Writes abandoned at their deadline (the writer was replaced)."""
        self.outage = Outage(
            retry_delay=retry_delay, retry_max_seconds=retry_max_seconds, warn_every=warn_every, clock=clock
        )
        self._pending: deque[CallRecord] = deque()
        """Records waiting for the writer, oldest first; all newer than any spooled record. A deque and one
        event, not an `asyncio.Queue`: the queue's bookkeeping was ~160 bytecodes per request on the loop."""
        self._wake = asyncio.Event()
        """Set when the first record arrives at an idle writer, when a batch is full, and on stop: the writer
        wakes once per batch, not once per record."""
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._abandoned: set[asyncio.Task[None]] = set()
        self._accepting = True
        self._write_started: float | None = None
        self._current: list[CallRecord] = []
        self._spilling = 0
        """Records on their way to the spool file (a thread writes them): neither queued nor spooled yet."""
        """The batch being written, while it is in no other queue (not yet spooled)."""
        self._clock = clock
        self._drop_log = Throttle(warn_every, clock)
        self._fail_log = Throttle(warn_every, clock)
        self._spool_log = Throttle(warn_every, clock)

    @property
    def depth(self) -> int:
        return len(self._pending)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def healthy(self) -> bool:
        """False while the database is away or records wait in the spool."""
        if self.outage.active or (self.spool is not None and self.spool.records):
            return False
        started = self._write_started  # a write hanging on a database that does not answer (yet) counts too
        return started is None or self._clock() - started < max(self.spool_after_seconds, 1.0)

    @property
    def last_error(self) -> str | None:
        return self.outage.last_error

    def stats(self) -> dict[str, Any]:
        spool = self.spool
        return {
            "running": self.running,
            "healthy": self.healthy,
            "queue_depth": self.depth + len(self._current) + self._spilling,
            "queue_size": self.queue_size,
            "oldest_unwritten_seconds": self._oldest_age(),
            "outage_seconds": round(self.outage.age(), 3) if self.outage.active else None,
            "last_error": self.last_error,
            "written": self.written,
            "dropped": self.dropped,
            "failed": self.failed,
            "stalls": self.stalls,
            "spooled": self.spooled,
            "spool_records": spool.records if spool else 0,
            "spool_bytes": spool.bytes if spool else 0,
            "spool_max_bytes": spool.max_bytes if spool else 0,
        }

    def _oldest_age(self) -> float | None:
        oldest = self.spool.oldest_at if self.spool is not None and self.spool.records else None
        if oldest is None and self._pending:
            oldest = self._pending[0].created_at
        return round((datetime.now(UTC) - oldest).total_seconds(), 3) if oldest else None

    def submit(self, record: CallRecord) -> bool:
        """Queue a record without waiting; False (counted, and logged now and then) when it had to be dropped."""
        if self._accepting:
            pending = self._pending
            if len(pending) < self.queue_size:
                pending.append(record)
                waiting = len(pending)
                if waiting == 1 or waiting >= self.batch_size:
                    self._wake.set()
                return True
            reason = f"the queue of {self.queue_size} is full (storage too slow?)"
        else:
            reason = "the recorder is stopped"
        self.dropped += 1
        if self.metrics is not None:
            self.metrics.dropped()
        if self._drop_log.ready():
            log.warning("call log: %d record(s) dropped so far; %s", self.dropped, reason)
        return False

    async def open_spool(self, directory: str | Path, max_bytes: int, *, database: str = "") -> None:
        """Keep records on disk under `directory` while the database is away. The files are named after
        `database` (hashed), so gateways of different databases may share a directory without mixing records.
        A spool that cannot be opened is logged, and records then wait in memory only."""
        name = f"calllog-{hashlib.sha256(database.encode()).hexdigest()[:12]}" if database else "calllog"
        spool = Spool(Path(directory), max_bytes, name)
        try:
            await asyncio.to_thread(spool.open)
        except OSError as exc:
            log.error("call log: no spool in %s (%s); records wait in memory only", directory, exc)
            return
        self.spool = spool

    async def start(self) -> None:
        if self._task is None:
            self._accepting = True
            self._stopping.clear()
            self._task = asyncio.create_task(self._run(), name="portico-recorder")

    async def stop(self, grace_seconds: float = 10.0) -> None:
        """Stop accepting records; write what is queued, or spool it if the database is away (for at most
        `grace_seconds`). What is spooled stays for the next start; only what fits nowhere is counted lost."""
        self._accepting = False
        self._stopping.set()
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), grace_seconds)
            except TimeoutError:
                log.error("call log: shutdown timed out after %.1fs", grace_seconds)
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        unwritten = [*self._current, *self._pending]
        self._current, self._pending = [], deque()
        left = await self._spill(unwritten) if unwritten else []  # counts and logs what the spool cannot fit
        if left:
            self._count_failed(len(left))
            log.error("call log: stopped with %d record(s) not written (nor spooled)", len(left))
        for abandoned in list(self._abandoned):
            abandoned.cancel()
        if self.spool is not None:
            await asyncio.to_thread(self.spool.close)

    async def _run(self) -> None:
        while True:
            try:
                if not await self._step():
                    return
            except Exception:  # the steps handle failures themselves; this only keeps the task alive whatever happens
                log.exception("call log: unexpected error in the writer")
                await self._pause()

    async def _step(self) -> bool:
        """One batch from the spool (oldest first) or the queue; False once stopped with nothing left to do."""
        spool = self.spool
        stopping = self._stopping.is_set()
        if spool is not None and spool.records and not stopping:
            records, mark = await asyncio.to_thread(spool.read, self.batch_size)
            if records:
                outcome = await self._attempt(records)
                if outcome == "failed":
                    await self._spill_pending()  # behind what the spool holds already
                    await self._pause()
                    return True
                self._counted(records, outcome)
            await asyncio.to_thread(spool.commit, mark)
            return True
        if stopping and (self.outage.active or not self._pending or (spool and spool.records)):
            return False  # what remains is spooled by stop(), after what the spool holds
        batch = await self._next_batch()
        if batch:
            await self._write_fresh(batch)
        return True

    async def _write_fresh(self, batch: list[CallRecord]) -> None:
        self._current = batch
        outcome = await self._attempt(batch)
        kept_here, self._current = bool(self._current), []
        if outcome == "failed":
            if kept_here:  # the batch did not go to the spool while it waited: it stays first in line
                self._pending.extendleft(reversed(batch))
            if self.spool is not None and self.outage.age() >= self.spool_after_seconds:
                await self._spill_pending()
            await self._pause()
        elif kept_here:
            self._counted(batch, outcome)

    def _counted(self, records: Sequence[CallRecord], outcome: Outcome) -> None:
        if outcome == "written":
            self.written += len(records)

    async def _attempt(self, batch: list[CallRecord]) -> Outcome:
        """Write one batch under a deadline. While it waits on a database that does not answer, newer records
        go to the spool (this batch first, if it is not there already: order is kept, and a write that lands
        after all is not doubled, as the insert skips stored ids)."""
        task = asyncio.ensure_future(self.sink.insert_many(batch))
        self._write_started = started = self._clock()
        try:
            await self._wait_or_spill(task, batch, started)
        except asyncio.CancelledError:
            self._track(task)
            raise
        finally:
            self._write_started = None
        if not task.done():
            await self._abandon(task)
            return "failed"
        error = task.exception()
        if error is None:
            self.outage.recovered()
            return "written"
        if isinstance(error, ValueError):
            return await self._rejected(batch, error)
        self.outage.failed(error)
        return "failed"

    async def _wait_or_spill(self, task: asyncio.Future[None], batch: list[CallRecord], started: float) -> None:
        """Wait for the write until its deadline (sooner when stopping and nothing is left in memory)."""
        while not task.done():
            waited = self._clock() - started
            if waited >= self.write_timeout or (
                self._stopping.is_set()
                and waited >= self.spool_after_seconds
                and not self._current
                and not self._pending
            ):
                return
            await asyncio.wait({task}, timeout=min(self.write_timeout - waited, max(self.spool_after_seconds, 0.05)))
            if not task.done() and self.spool is not None and self._clock() - started >= self.spool_after_seconds:
                if self._current and not await self._spill(batch):
                    self._current = []
                await self._spill_pending()

    async def _rejected(self, batch: list[CallRecord], error: BaseException) -> Outcome:
        """The database refused the batch for its content: write the records one by one, and count (and log)
        the ones it refuses, rather than retry a poisoned batch forever."""
        self.outage.recovered()
        if len(batch) > 1:
            for index, record in enumerate(batch):
                try:
                    async with asyncio.timeout(self.write_timeout):
                        await self.sink.insert_many([record])
                except ValueError:
                    self._count_failed(1)
                except Exception as exc:  # the database went away mid-way: the rest waits like any record
                    self._pending.extendleft(reversed(batch[index:]))
                    self.outage.failed(exc)
                    return "rejected"
                else:
                    self.written += 1
        else:
            self._count_failed(1)
        if self._fail_log.ready():
            log.error("call log: %d record(s) refused by the database so far: %s", self.failed, error)
        return "rejected"

    async def _abandon(self, task: asyncio.Future[None]) -> None:
        """The write outlived its deadline: stop waiting, and make the next write use a new connection."""
        self.stalls += 1
        self._track(task)
        self.outage.failed(TimeoutError(f"a write took longer than {self.write_timeout:g}s; writer replaced"))
        reset = getattr(self.sink, "reset", None)
        if reset is not None:
            try:
                async with asyncio.timeout(self.write_timeout):
                    await reset()
            except Exception:
                log.warning("call log: resetting the database connections failed", exc_info=True)

    def _track(self, task: asyncio.Future[None]) -> None:
        """Cancel a write given up on, and keep it referenced until it is done (cancelled again at stop)."""
        task.cancel()
        if isinstance(task, asyncio.Task) and not task.done():
            self._abandoned.add(task)
            task.add_done_callback(_forget(self._abandoned))

    async def _pause(self) -> None:
        """Back off before the next try (doubling, capped); a stop cuts the wait short."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.outage.next_delay()):
                await self._stopping.wait()

    async def _spill_pending(self) -> None:
        if self._pending and self.spool is not None:
            records = list(self._pending)
            self._pending.clear()
            self._pending.extendleft(reversed(await self._spill(records)))

    async def _spill(self, records: list[CallRecord]) -> list[CallRecord]:
        """Move records to the spool; what does not fit is dropped, counted, and logged once per outage. Returns
        the records a failing spool (disk full, read-only) could not take: they stay in memory."""
        if self.spool is None:
            return records
        self._spilling += len(records)
        try:
            kept = await asyncio.to_thread(self.spool.append, records)
        except OSError as exc:
            if self._spool_log.ready():
                log.error("call log: the spool cannot be written (%s); records wait in memory", exc)
            return records
        finally:
            self._spilling -= len(records)
        self.spooled += kept
        if kept < len(records):
            self._count_failed(len(records) - kept)
            if not self.outage.spool_full_logged:
                self.outage.spool_full_logged = True
                log.error(
                    "call log: the spool is full (%d bytes); %d record(s) dropped (more are counted, not logged)",
                    self.spool.max_bytes,
                    len(records) - kept,
                )
        return []

    async def _next_batch(self) -> list[CallRecord]:
        """Up to `batch_size` records: waits for the first, then at most `flush_seconds` for a full batch."""
        pending = self._pending
        if not pending:
            self._wake.clear()
            if not self._accepting:
                return []
            await self._wake.wait()
        if self._accepting and len(pending) < self.batch_size:
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.flush_seconds):
                    await self._wake.wait()
        return [pending.popleft() for _ in range(min(self.batch_size, len(pending)))]

    def _count_failed(self, count: int) -> None:
        self.failed += count
        if self.metrics is not None and count:
            self.metrics.dropped(count)


def _forget(tasks: set[asyncio.Task[None]]) -> Callable[[asyncio.Task[None]], None]:
    def done(task: asyncio.Task[None]) -> None:
        tasks.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved, so asyncio does not log "exception was never retrieved"

    return done
