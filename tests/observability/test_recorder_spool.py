"""The Recorder through outages, with a fake sink: stalled writes are abandoned, records wait on disk in the
spool and come back in order, once each; only a full spool drops records, counted and logged once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path

import pytest

from portico.core.records import CallRecord
from portico.observability.metrics import Metrics
from portico.observability.recorder import Recorder
from portico.observability.spool import Spool, encode
from tests.observability.test_recorder import FakeSink, dropped_metric, wait_for
from tests.storage.conftest import make_record


class Outage(FakeSink):
    """Fails (or hangs) while `down` is set; counts resets."""

    def __init__(self, *, hang: bool = False) -> None:
        super().__init__()
        self.down = True
        self.hang = hang
        self.resets = 0
        self.ids: set[str] = set()

    async def insert_many(self, records: Sequence[CallRecord]) -> None:
        self.calls += 1
        if self.down:
            if self.hang:
                await asyncio.Event().wait()
            raise ConnectionRefusedError("connection refused")
        fresh = [r for r in records if r.id not in self.ids]  # the real repo skips stored ids too
        self.ids.update(r.id for r in fresh)
        self.batches.append(fresh)

    async def reset(self) -> None:
        self.resets += 1


def spool_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("calllog*.jsonl"))


def recorder_for(sink: FakeSink, spool_dir: Path, **options: object) -> Recorder:
    settings: dict[str, object] = {
        "queue_size": 1000,
        "batch_size": 20,
        "retry_delay": 0.02,
        "retry_max_seconds": 0.1,
        "spool_after_seconds": 0.1,
        "write_timeout": 1.0,
    }
    settings.update(options)
    return Recorder(sink, **settings)  # type: ignore[arg-type]


async def spooling(sink: FakeSink, spool_dir: Path, spool_bytes: int = 1 << 20, **options: object) -> Recorder:
    """A started recorder whose spool is open in `spool_dir`."""
    recorder = recorder_for(sink, spool_dir, **options)
    await recorder.open_spool(spool_dir, spool_bytes)
    await recorder.start()
    return recorder


async def submit(recorder: Recorder, count: int, pause: float = 0.0) -> None:
    """Records r0 ... r{count - 1}, `pause` seconds apart."""
    for n in range(count):
        recorder.submit(make_record(n, request_id=f"r{n}"))
        if pause:
            await asyncio.sleep(pause)


async def recovered(sink: Outage, count: int) -> None:
    """The outage ends; then r0 ... r{count - 1} are written, in order, once each."""
    sink.down = False
    await wait_for(lambda: len(sink.written) == count)
    assert [r.request_id for r in sink.written] == [f"r{n}" for n in range(count)]


async def test_an_outage_moves_records_to_the_spool_and_they_come_back_in_order_once(tmp_path: Path) -> None:
    sink = Outage()
    recorder = await spooling(sink, tmp_path)
    await submit(recorder, 120, pause=0.002)
    await wait_for(lambda: recorder.stats()["spool_records"] == 120)
    stats = recorder.stats()
    assert not recorder.healthy and stats["queue_depth"] == 0 and stats["spool_bytes"] > 0
    assert stats["oldest_unwritten_seconds"] > 0 and "refused" in stats["last_error"]
    assert len(spool_files(tmp_path)) == 1
    await recovered(sink, 120)
    assert recorder.healthy and recorder.stats()["spool_records"] == 0 and recorder.failed == 0
    await recorder.stop()
    assert spool_files(tmp_path) == []  # an empty spool leaves no file behind


async def test_a_stalled_write_is_abandoned_at_its_deadline_and_the_writer_replaced(tmp_path: Path) -> None:
    sink = Outage(hang=True)
    recorder = await spooling(sink, tmp_path, write_timeout=0.3)
    await submit(recorder, 30)
    await wait_for(lambda: recorder.stalls >= 1)
    assert sink.resets >= 1 and "longer than 0.3s" in (recorder.last_error or "")
    assert recorder.stats()["spool_records"] == 30  # spooled while the write hung
    await recovered(sink, 30)
    await recorder.stop()


async def test_records_spooled_at_shutdown_are_written_by_the_next_recorder(tmp_path: Path) -> None:
    sink = Outage()
    first = await spooling(sink, tmp_path, spool_after_seconds=60)
    await submit(first, 50)
    await wait_for(lambda: sink.calls >= 1)
    await first.stop(grace_seconds=2)
    assert first.failed == 0 and first.stats()["spool_records"] == 0  # closed; the file holds them
    sink.down = False
    second = recorder_for(sink, tmp_path)
    await second.open_spool(tmp_path, 1 << 20)
    assert second.stats()["spool_records"] == 50 and not second.healthy
    await second.start()
    await recovered(sink, 50)
    await second.stop()


async def test_a_full_spool_drops_counts_and_logs_once_per_outage(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sink, metrics = Outage(), Metrics()
    line = len(encode(make_record(0)))
    recorder = await spooling(sink, tmp_path, line * 10 + line // 2, metrics=metrics)  # room for 10 records
    await submit(recorder, 40, pause=0.005)
    await wait_for(lambda: recorder.failed == 30)
    assert dropped_metric(metrics) == 30 and recorder.stats()["spool_records"] == 10
    full = [r for r in caplog.records if r.levelno == logging.ERROR and "spool is full" in r.getMessage()]
    assert len(full) == 1
    await recovered(sink, 10)
    await recorder.stop()


def test_a_torn_last_line_is_skipped_and_a_lagging_offset_only_repeats_records(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1 << 20)
    spool.open()
    spool.append([make_record(n, request_id=f"r{n}") for n in range(5)])
    records, mark = spool.read(2)
    spool.commit(mark)
    spool.close()
    path = next(tmp_path.glob("calllog-*.jsonl"))
    with path.open("ab") as handle:
        handle.write(encode(make_record(9))[:40])  # a crash mid-append
    again = Spool(tmp_path, 1 << 20)
    again.open()
    assert again.records == 4  # three whole records and the torn one
    records, mark = again.read(10)
    assert [r.request_id for r in records] == ["r2", "r3", "r4"]
    again.commit(mark)
    assert again.records == 0 and again.bytes == 0
    again.close()


def test_a_second_process_takes_its_own_slot_and_adopts_a_dead_ones_file(tmp_path: Path) -> None:
    first, second = Spool(tmp_path, 1 << 20), Spool(tmp_path, 1 << 20)
    first.open()
    second.open()
    first.append([make_record(1, request_id="from-first")])
    assert len(list(tmp_path.glob("calllog-*.jsonl"))) == 2
    first.close()  # its process is gone
    third = Spool(tmp_path, 1 << 20)
    third.open()
    records, mark = third.read(10)
    assert [r.request_id for r in records] == ["from-first"]
    third.commit(mark)
    assert third.records == 0
    second.close()
    third.close()


async def test_a_spool_that_cannot_be_written_keeps_records_in_memory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A full disk fails the spool as well: the records then wait in memory, and none is counted lost."""
    sink = Outage()
    recorder = recorder_for(sink, tmp_path)
    await recorder.open_spool(tmp_path, 1 << 20)
    assert recorder.spool is not None

    def no_space(records: Sequence[CallRecord]) -> int:
        raise OSError(28, "No space left on device")

    recorder.spool.append = no_space  # type: ignore[method-assign]
    await recorder.start()
    await submit(recorder, 30)
    await wait_for(lambda: any("spool cannot be written" in r.getMessage() for r in caplog.records))
    assert recorder.stats()["queue_depth"] == 30 and recorder.failed == 0
    await recovered(sink, 30)
    await recorder.stop()
