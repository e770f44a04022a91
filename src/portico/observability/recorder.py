"""Writes call records off the hot path: `submit()` only enqueues; a background task writes them in batches.

Never silent: a record that cannot be queued (queue full, recorder stopped) or written (the write failed twice)
is counted, reported in Prometheus' `portico_records_dropped_total` and logged (at most once per 10 s each).
`stop()` drains the queue before it returns, so a graceful shutdown loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from portico.core.records import CallRecord
from portico.observability.metrics import Metrics

log = logging.getLogger("portico.recorder")


class RecordSink(Protocol):
    async def insert_many(self, records: Sequence[CallRecord]) -> None: ...


class _Throttle:
    """Lets a log line through at most once per `every` seconds."""

    def __init__(self, every: float, clock: Callable[[], float]) -> None:
        self.every = every
        self.clock = clock
        self.last: float | None = None

    def ready(self) -> bool:
        now = self.clock()
        if self.last is None or now - self.last >= self.every:
            self.last = now
            return True
        return False


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
        warn_every: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sink = sink
        self.metrics = metrics
        self.queue_size = queue_size
        self.batch_size = batch_size
        self.flush_seconds = flush_seconds
        self.retry_delay = retry_delay
        self.dropped = 0
        """Records never queued: the queue was full, or the recorder was not running."""
        self.failed = 0
        """Records queued but not written: the database refused them twice, or shutdown timed out."""
        self.written = 0
        self.healthy = True
        """False while the last write failed."""
        self._pending: deque[CallRecord] = deque()
        """Records waiting for the writer. A deque and one event, not an `asyncio.Queue`: the queue's bookkeeping
        (put, get, task_done, size checks) was ~160 bytecodes per request on the event loop."""
        self._wake = asyncio.Event()
        """Set when the first record arrives at an idle writer, when a batch is full, and on stop: the writer
        wakes once per batch, not once per record."""
        self._task: asyncio.Task[None] | None = None
        self._accepting = True
        self._in_flight = 0
        self._drop_log = _Throttle(warn_every, clock)
        self._fail_log = _Throttle(warn_every, clock)
        self._retry_log = _Throttle(warn_every, clock)

    @property
    def depth(self) -> int:
        return len(self._pending)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def stats(self) -> dict[str, Any]:
        return {
            "running": self.running,
            "queue_depth": self.depth,
            "queue_size": self.queue_size,
            "written": self.written,
            "dropped": self.dropped,
            "failed": self.failed,
        }

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

    async def start(self) -> None:
        if self._task is None:
            self._accepting = True
            self._task = asyncio.create_task(self._run(), name="portico-recorder")

    async def stop(self, grace_seconds: float = 10.0) -> None:
        """Stop accepting records and write everything queued (for at most `grace_seconds`): the writer task
        ends by itself once nothing is left."""
        self._accepting = False
        self._wake.set()
        task, self._task = self._task, None
        if task is None:
            unwritten = len(self._pending)
            self._pending.clear()
            if unwritten:
                log.error("call log: stopped without having run; %d record(s) not written", unwritten)
                self._count_failed(unwritten)
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), grace_seconds)
        except TimeoutError:
            unwritten = len(self._pending) + self._in_flight
            self._pending.clear()
            self._count_failed(unwritten)
            log.error("call log: shutdown timed out after %.1fs; %d record(s) not written", grace_seconds, unwritten)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while self._accepting or self._pending:
            batch = await self._next_batch()
            if not batch:
                continue
            self._in_flight = len(batch)
            try:
                await self._write(batch)
            except Exception:  # _write handles failures itself; this only keeps the task alive whatever happens
                log.exception("call log: unexpected error while writing %d record(s)", len(batch))
            finally:
                self._in_flight = 0

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

    async def _write(self, batch: list[CallRecord]) -> None:
        try:
            await self.sink.insert_many(batch)
        except Exception:
            if self._retry_log.ready():
                log.warning("call log: writing %d record(s) failed; retrying once", len(batch), exc_info=True)
            await asyncio.sleep(self.retry_delay)
            try:
                await self.sink.insert_many(batch)
            except Exception:
                self.healthy = False
                self._count_failed(len(batch))
                if self._fail_log.ready():
                    log.exception("call log: %d record(s) lost so far; the database refused them", self.failed)
                return
        self.written += len(batch)
        self.healthy = True

    def _count_failed(self, count: int) -> None:
        self.failed += count
        if self.metrics is not None and count:
            self.metrics.dropped(count)
