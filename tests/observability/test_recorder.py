"""The Recorder with a fake sink: batches, never blocks, counts and reports every record it cannot keep."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

import pytest

from portico.core.records import CallRecord
from portico.observability.metrics import Metrics
from portico.observability.recorder import Recorder
from tests.storage.conftest import make_record


class FakeSink:
    def __init__(self, delay: float = 0.0, failures: int = 0) -> None:
        self.delay = delay
        self.failures = failures
        self.batches: list[list[CallRecord]] = []
        self.calls = 0

    async def insert_many(self, records: Sequence[CallRecord]) -> None:
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.failures:
            self.failures -= 1
            raise ConnectionError("database went away")
        self.batches.append(list(records))

    @property
    def written(self) -> list[CallRecord]:
        return [r for batch in self.batches for r in batch]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def dropped_metric(metrics: Metrics) -> float:
    value = metrics.registry.get_sample_value("portico_records_dropped_total")
    assert value is not None
    return value


async def wait_for(condition: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_records_are_written_in_batches_of_at_most_200() -> None:
    sink = FakeSink()
    recorder = Recorder(sink, queue_size=1000)
    for n in range(450):  # queued before the task runs: the first batches are full
        assert recorder.submit(make_record(n))
    await recorder.start()
    await wait_for(lambda: len(sink.written) == 450)
    assert [len(b) for b in sink.batches] == [200, 200, 50]
    assert recorder.written == 450 and recorder.depth == 0
    await recorder.stop()


async def test_a_lone_record_is_written_within_the_flush_interval() -> None:
    sink = FakeSink()
    recorder = Recorder(sink, queue_size=10, flush_seconds=0.1)
    await recorder.start()
    started = time.monotonic()
    recorder.submit(make_record(1))
    await wait_for(lambda: len(sink.written) == 1)
    assert time.monotonic() - started < 0.5
    await recorder.stop()


async def test_a_flood_against_a_slow_database_drops_counts_and_warns_without_blocking(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = FakeSink(delay=0.3)
    metrics = Metrics()
    recorder = Recorder(sink, queue_size=5, metrics=metrics, batch_size=2)
    await recorder.start()
    await asyncio.sleep(0)
    caplog.set_level(logging.WARNING, "portico.recorder")
    started = time.perf_counter()
    accepted = sum(recorder.submit(make_record(n)) for n in range(2000))
    elapsed = time.perf_counter() - started
    assert elapsed < 0.5, f"submit blocked: {elapsed:.3f}s for 2000 records"
    assert accepted <= 5 + 2
    assert recorder.dropped == 2000 - accepted
    assert dropped_metric(metrics) == recorder.dropped
    warnings = [r for r in caplog.records if r.name == "portico.recorder" and r.levelno == logging.WARNING]
    assert len(warnings) == 1  # once per 10 s, not once per record
    assert "dropped" in warnings[0].getMessage() and "full" in warnings[0].getMessage()
    assert recorder.stats()["dropped"] == recorder.dropped
    await recorder.stop()
    assert len(sink.written) == accepted  # what was accepted was kept


async def test_the_drop_warning_repeats_every_10_seconds_with_the_running_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    recorder = Recorder(FakeSink(), queue_size=1, clock=clock)
    caplog.set_level(logging.WARNING, "portico.recorder")
    recorder.submit(make_record(0))  # fills the queue (not started)
    for n in range(3):
        recorder.submit(make_record(n))
    clock.now += 9.9
    recorder.submit(make_record(9))
    assert len(caplog.records) == 1
    clock.now += 0.2
    recorder.submit(make_record(10))
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert "1 record(s) dropped" in messages[0] and "5 record(s) dropped" in messages[1]


async def test_stop_drains_everything_submitted_right_before_it() -> None:
    sink = FakeSink(delay=0.01)
    recorder = Recorder(sink, queue_size=10_000)
    await recorder.start()
    records = [make_record(n, request_id=f"r{n}") for n in range(1234)]
    for record in records:
        recorder.submit(record)
    await recorder.stop()
    assert [r.request_id for r in sink.written] == [r.request_id for r in records]
    assert recorder.failed == recorder.dropped == 0 and not recorder.running


async def test_records_after_stop_are_counted_not_lost_silently(caplog: pytest.LogCaptureFixture) -> None:
    metrics = Metrics()
    recorder = Recorder(FakeSink(), queue_size=10, metrics=metrics)
    await recorder.start()
    await recorder.stop()
    caplog.set_level(logging.WARNING, "portico.recorder")
    assert recorder.submit(make_record(1)) is False
    assert recorder.dropped == 1 and dropped_metric(metrics) == 1
    assert "stopped" in caplog.records[0].getMessage()


async def test_a_stop_that_times_out_counts_what_it_could_not_write(caplog: pytest.LogCaptureFixture) -> None:
    metrics = Metrics()
    recorder = Recorder(FakeSink(delay=5), queue_size=100, metrics=metrics, batch_size=10)
    await recorder.start()
    for n in range(30):
        recorder.submit(make_record(n))
    await asyncio.sleep(0.05)
    await recorder.stop(grace_seconds=0.2)
    assert recorder.failed == 30 and dropped_metric(metrics) == 30
    assert any("shutdown timed out" in r.getMessage() for r in caplog.records)


async def test_a_failed_write_is_retried_until_the_database_answers_with_backoff_not_a_busy_loop() -> None:
    sink = FakeSink(failures=6)
    recorder = Recorder(sink, queue_size=10, retry_delay=0.02, retry_max_seconds=0.1)
    await recorder.start()
    recorder.submit(make_record(1))
    await wait_for(lambda: recorder.last_error is not None)
    assert not recorder.healthy and recorder.stats()["outage_seconds"] is not None
    await wait_for(lambda: len(sink.written) == 1)
    assert sink.calls == 7 and recorder.failed == 0 and recorder.healthy
    await recorder.stop()


async def test_records_wait_in_memory_through_an_outage_and_are_written_in_order(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = FakeSink(failures=10**6)
    recorder = Recorder(sink, queue_size=1000, batch_size=10, retry_delay=0.01, retry_max_seconds=0.05)
    await recorder.start()
    records = [make_record(n, request_id=f"r{n}") for n in range(95)]
    for record in records:
        recorder.submit(record)
        await asyncio.sleep(0.002)
    calls = sink.calls
    assert calls < 40, f"{calls} writes in ~0.2 s: the writer spins"
    assert recorder.written == 0 and recorder.stats()["queue_depth"] == 95
    assert recorder.stats()["oldest_unwritten_seconds"] > 0
    sink.failures = 0
    await wait_for(lambda: len(sink.written) == 95)
    assert [r.request_id for r in sink.written] == [r.request_id for r in records]
    assert recorder.failed == recorder.dropped == 0 and recorder.healthy
    outage_lines = [r for r in caplog.records if "not answering" in r.getMessage()]
    assert len(outage_lines) == 1  # once per outage
    await recorder.stop()


async def test_a_record_the_database_refuses_is_counted_and_the_rest_of_its_batch_is_written(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Picky(FakeSink):
        async def insert_many(self, records: Sequence[CallRecord]) -> None:
            if any(r.request_id == "bad" for r in records):
                raise ValueError("value too long for type character varying(16)")
            await super().insert_many(records)

    sink, metrics = Picky(), Metrics()
    recorder = Recorder(sink, queue_size=10, metrics=metrics)
    for n in range(5):
        recorder.submit(make_record(n, request_id="bad" if n == 2 else f"r{n}"))
    await recorder.start()
    await wait_for(lambda: recorder.written == 4)
    assert [r.request_id for r in sink.written] == ["r0", "r1", "r3", "r4"]
    assert recorder.failed == 1 and dropped_metric(metrics) == 1 and recorder.healthy
    assert any(r.levelno == logging.ERROR and "refused" in r.getMessage() for r in caplog.records)
    await recorder.stop()


async def test_stopping_a_recorder_that_never_ran_reports_its_queue(caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder(FakeSink(), queue_size=10)
    recorder.submit(make_record(1))
    await recorder.stop()
    assert recorder.failed == 1 and recorder.depth == 0
    assert "not written" in caplog.records[-1].getMessage()
