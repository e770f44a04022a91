"""The call log loses nothing when its database fails: PostgreSQL behind a fault proxy (half-open, refusing,
down at start-up, down at shutdown) and a locked SQLite file, under real traffic through a real gateway.

Each test counts what clients were answered against what the database holds: every record exactly once."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.conftest import KEY, http, stack_settings
from tests.faults.conftest import ProxiedPostgres
from tests.gateway_server import GatewayThread
from tests.upstreams.server import UpstreamThread

BODY = json.dumps({"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "log me"}]}).encode()


def fault_settings(
    upstream_url: str, storage_url: str, spool_dir: Path, driver_timeout: float = 0.5, **logging: Any
) -> dict[str, Any]:
    """Short deadlines, so that each fault shows within a second or two."""
    return stack_settings(
        upstream_url,
        storage={"url": storage_url, "connect_timeout": driver_timeout, "statement_timeout": driver_timeout},
        logging={
            "request_log": True,
            "queue_size": 20_000,
            "write_timeout": 1.0,
            "retry_max_seconds": 0.3,
            "spool_after_seconds": 0.3,
            "spool_dir": str(spool_dir),
            **logging,
        },
    )


class Traffic:
    """Chat requests from a few client threads until stopped; remembers the request ids answered 200."""

    def __init__(self, url: str, clients: int = 4, max_requests: int = 3000) -> None:
        self.url = url
        self.clients = clients
        self.max_requests = max_requests
        self.answered: list[str] = []
        self.other: list[int] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(clients)

    def send(self, count: int) -> None:
        """`count` requests, now, one after another."""
        for _ in range(count):
            self._one()

    def _one(self) -> None:
        request_id = f"fault-{uuid.uuid4().hex}"
        headers = {"content-type": "application/json", "authorization": f"Bearer {KEY}", "x-request-id": request_id}
        response = http("POST", self.url + "/v1/chat/completions", BODY, headers, timeout=10)
        with self._lock:
            (self.answered.append(request_id) if response.status == 200 else self.other.append(response.status))

    def _loop(self) -> None:
        while not self._stop.is_set() and len(self.answered) + len(self.other) < self.max_requests:
            self._one()
            time.sleep(0.002)

    def __enter__(self) -> Traffic:
        for _ in range(self.clients):
            self._pool.submit(self._loop)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._pool.shutdown(wait=True)


def health(gateway: GatewayThread) -> dict[str, Any]:
    report: dict[str, Any] = http("GET", gateway.url + "/health").json()
    return report


def watch_health(gateway: GatewayThread, seconds: float) -> list[dict[str, Any]]:
    """/health every 0.1 s for `seconds`."""
    seen, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        seen.append(health(gateway))
        time.sleep(0.1)
    return seen


def wait_until(condition: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"not within {within}s: {what}"
        time.sleep(0.05)


def degraded_with_waiting_records(report: dict[str, Any]) -> bool:
    recorder = report["recorder"]
    waiting = recorder["queue_depth"] + recorder["spool_records"]
    return report["status"] == "degraded" and waiting > 0 and (recorder["oldest_unwritten_seconds"] or 0) > 0


def settled(report: dict[str, Any]) -> bool:
    recorder = report["recorder"]
    return report["status"] == "ok" and recorder["queue_depth"] == 0 and recorder["spool_records"] == 0


def warmed_up(gateway: GatewayThread, count: int) -> Traffic:
    """Traffic to `gateway` whose first `count` requests are answered and their records written."""
    traffic = Traffic(gateway.url)
    traffic.send(count)
    wait_until(lambda: settled(health(gateway)), 5, "the first records written")
    return traffic


def through_fault(
    gateway: GatewayThread, traffic: Traffic, start: Callable[[], object], end: Callable[[], object], seconds: float
) -> list[dict[str, Any]]:
    """`traffic` from its clients while a fault lasts `seconds`, /health read every 0.1 s meanwhile (the reports
    are returned); then, bounded, until every waiting record is written."""
    with traffic:
        time.sleep(0.3)
        start()
        during = watch_health(gateway, seconds)
        end()
        time.sleep(0.3)
    wait_until(lambda: settled(health(gateway)), 10, "every waiting record written")
    return during


def next_gateway_writes_the_spool(settings: dict[str, Any]) -> None:
    with GatewayThread(settings) as gateway:
        wait_until(lambda: settled(health(gateway)), 10, "the spool of the last run written")


async def _pg_request_ids(pg: ProxiedPostgres) -> list[str]:
    conn = await asyncpg.connect(pg.direct_url, timeout=5)
    try:
        rows = await conn.fetch(f'SELECT request_id FROM "{pg.schema}".request_logs')
    except asyncpg.UndefinedTableError:
        return []
    finally:
        await conn.close()
    return [row["request_id"] for row in rows]


def pg_request_ids(pg: ProxiedPostgres) -> list[str]:
    return asyncio.run(_pg_request_ids(pg))


def sqlite_request_ids(path: Path) -> list[str]:
    conn = sqlite3.connect(path, timeout=10)
    try:
        return [row[0] for row in conn.execute("SELECT request_id FROM request_logs")]
    finally:
        conn.close()


def assert_each_once(stored: list[str], answered: list[str]) -> None:
    assert len(stored) == len(set(stored)), f"{len(stored) - len(set(stored))} record(s) written twice"
    missing = set(answered) - set(stored)
    assert not missing, f"{len(missing)} of {len(answered)} answered requests have no record"


@pytest.fixture
def upstream(upstream_thread: UpstreamThread) -> Iterator[UpstreamThread]:
    upstream_thread.state.reset()
    yield upstream_thread
    upstream_thread.state.reset()


@pytest.mark.parametrize(
    ("fault", "driver_timeout"),
    [("hang", 0.5), ("hang", 60.0), ("refuse", 0.5)],
    ids=["half-open-driver-deadlines", "half-open-writer-deadline-only", "refusing"],
)
def test_a_half_open_or_refusing_postgres_freezes_nothing_loses_nothing_and_health_says_degraded(
    upstream: UpstreamThread, proxied_postgres: ProxiedPostgres, tmp_path: Path, fault: str, driver_timeout: float
) -> None:
    """Records wait in the spool meanwhile and are each written once after. With the driver's deadlines far off,
    the writer's own (1 s) is what notices a half-open stall and replaces it."""
    pg = proxied_postgres
    with GatewayThread(fault_settings(upstream.url, pg.url, tmp_path, driver_timeout)) as gateway:
        traffic = warmed_up(gateway, 20)
        during = through_fault(gateway, traffic, lambda: pg.proxy.mode(fault), lambda: pg.proxy.mode("pass"), 3.0)
        final = health(gateway)["recorder"]
    stored = pg_request_ids(pg)
    degraded = [report for report in during if degraded_with_waiting_records(report)]
    assert degraded, during[-1]
    if fault == "refuse":
        assert any(report["recorder"]["spool_records"] > 0 for report in degraded)
    if driver_timeout > 10:
        assert final["stalls"] > 0
    assert final["spooled"] > 0 and final["failed"] == final["dropped"] == 0
    assert_each_once(stored, traffic.answered)
    assert len(stored) == len(traffic.answered) and not traffic.other
    print(f"{fault}: answered {len(traffic.answered)}, stored {len(stored)}, recorder {final}")


def test_a_gateway_starts_and_serves_while_postgres_refuses_then_catches_up(
    upstream: UpstreamThread, proxied_postgres: ProxiedPostgres, tmp_path: Path
) -> None:
    pg = proxied_postgres
    pg.proxy.mode("refuse")
    started = time.monotonic()
    with GatewayThread(fault_settings(upstream.url, pg.url, tmp_path)) as gateway:
        assert time.monotonic() - started < 5
        traffic = Traffic(gateway.url)
        traffic.send(30)
        assert len(traffic.answered) == 30
        wait_until(lambda: health(gateway)["recorder"]["spool_records"] > 0, 5, "records spooled")
        down = health(gateway)
        assert down["status"] == "degraded" and down["ready"] is True
        assert down["storage"]["schema_ready"] is False and down["storage"]["last_error"]
        assert pg_request_ids(pg) == []  # no schema yet
        pg.proxy.mode("pass")
        wait_until(lambda: settled(health(gateway)), 10, "schema created and spool replayed")
        up = health(gateway)
    assert up["storage"]["schema_ready"] is True and up["storage"]["ok"] is True
    stored = pg_request_ids(pg)
    assert_each_once(stored, traffic.answered)
    assert len(stored) == 30


def test_records_spooled_at_shutdown_are_written_by_the_next_gateway(
    upstream: UpstreamThread, proxied_postgres: ProxiedPostgres, tmp_path: Path
) -> None:
    pg = proxied_postgres
    settings = fault_settings(upstream.url, pg.url, tmp_path, spool_after_seconds=30)  # in memory at shutdown
    with GatewayThread(settings) as gateway:
        traffic = warmed_up(gateway, 5)
        pg.proxy.mode("refuse")
        traffic.send(40)
        wait_until(lambda: health(gateway)["recorder"]["last_error"] is not None, 5, "the outage noticed")
        first = gateway.app.recorder
    assert first.failed == 0 and first.spooled >= 40
    assert len(pg_request_ids(pg)) == 5
    pg.proxy.mode("pass")
    next_gateway_writes_the_spool(settings)
    stored = pg_request_ids(pg)
    assert_each_once(stored, traffic.answered)
    assert len(stored) == 45


def test_a_full_spool_drops_records_counted_and_logged_never_silently(
    upstream: UpstreamThread, proxied_postgres: ProxiedPostgres, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pg = proxied_postgres
    settings = fault_settings(upstream.url, pg.url, tmp_path, spool_max_bytes=8192)
    with GatewayThread(settings) as gateway:
        traffic = warmed_up(gateway, 5)
        pg.proxy.mode("refuse")
        traffic.send(60)
        wait_until(lambda: health(gateway)["recorder"]["queue_depth"] == 0, 5, "the queue spooled")
        full = health(gateway)["recorder"]
        pg.proxy.mode("pass")
        wait_until(lambda: settled(health(gateway)), 10, "the spool replayed")
        final = health(gateway)["recorder"]
        metrics = http("GET", gateway.url + "/metrics", headers={"authorization": f"Bearer {KEY}"})
    stored = pg_request_ids(pg)
    assert 0 < full["spool_records"] < 60 and full["spool_bytes"] <= 8192
    assert final["failed"] > 0 and len(stored) + final["failed"] == 65
    assert len(stored) == len(set(stored))
    logged = [r for r in caplog.records if "spool is full" in r.getMessage()]
    assert len(logged) == 1
    if metrics.status == 200:
        assert f"portico_records_dropped_total {float(final['failed'])}" in metrics.body.decode()


def test_a_locked_sqlite_file_loses_nothing_and_health_says_degraded(upstream: UpstreamThread, tmp_path: Path) -> None:
    db_path = tmp_path / "portico.db"
    with GatewayThread(fault_settings(upstream.url, f"sqlite:///{db_path}", tmp_path / "spool")) as gateway:
        traffic = warmed_up(gateway, 10)
        locker = sqlite3.connect(db_path, timeout=5, isolation_level=None)
        # Another writer holds the file: every write fails "locked".
        lock, unlock = (lambda: locker.execute("BEGIN EXCLUSIVE")), (lambda: locker.execute("ROLLBACK"))
        during = through_fault(gateway, traffic, lock, unlock, 2.5)
        locker.close()
        final = health(gateway)["recorder"]
    stored = sqlite_request_ids(db_path)
    assert any(degraded_with_waiting_records(report) for report in during), during[-1]
    assert final["spooled"] > 0 and final["failed"] == final["dropped"] == 0
    assert_each_once(stored, traffic.answered)
    assert len(stored) == len(traffic.answered)
    print(f"sqlite locked: answered {len(traffic.answered)}, stored {len(stored)}, recorder {final}")


def test_a_shutdown_while_sqlite_is_locked_spools_and_the_next_gateway_writes(
    upstream: UpstreamThread, tmp_path: Path
) -> None:
    db_path = tmp_path / "portico.db"
    settings = fault_settings(upstream.url, f"sqlite:///{db_path}", tmp_path / "spool")
    locker = sqlite3.connect(db_path, timeout=5, isolation_level=None)
    with GatewayThread(settings) as gateway:
        traffic = warmed_up(gateway, 5)
        locker.execute("BEGIN EXCLUSIVE")
        traffic.send(30)
        first = gateway.app.recorder
    locker.execute("ROLLBACK")
    locker.close()
    assert first.failed == 0
    next_gateway_writes_the_spool(settings)
    stored = sqlite_request_ids(db_path)
    assert_each_once(stored, traffic.answered)
    assert len(stored) == 35


def test_a_shutdown_while_postgres_hangs_spools_promptly_and_the_next_gateway_writes(
    upstream: UpstreamThread, proxied_postgres: ProxiedPostgres, tmp_path: Path
) -> None:
    pg = proxied_postgres
    settings = fault_settings(upstream.url, pg.url, tmp_path)
    with GatewayThread(settings) as gateway:
        traffic = warmed_up(gateway, 5)
        pg.proxy.mode("hang")
        traffic.send(30)
        first = gateway.app.recorder
        stopping = time.monotonic()
    took = time.monotonic() - stopping
    assert not gateway._thread.is_alive() and took < 8, f"shutdown took {took:.1f}s"
    assert first.failed == 0 and first.spooled >= 30
    pg.proxy.mode("pass")
    next_gateway_writes_the_spool(settings)
    stored = pg_request_ids(pg)
    assert_each_once(stored, traffic.answered)
    assert len(stored) == 35
    print(f"shutdown in a hang: {took:.2f}s")
