"""`/health` of a gateway served by two workers (`portico serve --workers 2`): whichever worker answers, the
recorder it reports is the server's (every record either worker wrote), with one line per worker; and the probe
interval is the operator's setting."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from portico.observability.worker_health import WorkerHealth, combine_recorders
from tests.conftest import http
from tests.http.test_workers_sync_e2e import ADMIN, HI, KEY, Served
from tests.upstreams.server import UpstreamThread

SENT = 30


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamThread]:
    from tests.upstreams import openai

    with UpstreamThread([openai.install]) as thread:
        yield thread


def config(upstream_url: str, storage_url: str) -> str:
    return (
        f'auth: {{keys: ["{KEY}"]}}\n'
        f'providers:\n  openai: {{api_key: "sk-upstream", base_url: "{upstream_url}/v1"}}\n'
        f'storage: {{url: "{storage_url}"}}\n'
        "logging: {request_log: true, access_log: false}\n"
        "health: {probe_interval_seconds: 0.2}\n"
    )


def health(url: str) -> dict[str, Any]:
    answer = http("GET", f"{url}/health", timeout=5)  # a fresh connection: either worker may answer
    assert answer.status in (200, 503)
    return dict(answer.json())


def test_either_worker_reports_the_servers_recorder_and_every_worker(tmp_path: Path, upstream: UpstreamThread) -> None:
    served = Served(tmp_path, "health", config(upstream.url, f"sqlite:///{tmp_path}/portico.db"), workers=2)
    try:
        served.wait_healthy()
        body = json.dumps({"model": "openai/gpt-4o", "messages": HI}).encode()
        sent = 0

        def chat() -> None:
            assert http("POST", f"{served.url}/v1/chat/completions", body, ADMIN, timeout=5).status == 200

        def whole(report: dict[str, Any]) -> bool:
            return len(report.get("workers", [])) == 2 and report["recorder"]["written"] == sent

        def settled() -> dict[str, Any]:
            deadline = time.monotonic() + 20  # each worker shares its state every 0.5 s; a loaded CI machine is slow
            while not whole(report := health(served.url)) and time.monotonic() < deadline:
                time.sleep(0.2)
            return report

        # The kernel, not the test, picks which worker accepts: batches of concurrent fresh connections until
        # both have served some (on a busy machine one worker can take a whole sequential run).
        with ThreadPoolExecutor(8) as pool:
            while sent < 400:
                list(pool.map(lambda _: chat(), range(SENT)))
                sent += SENT
                if all(worker["recorder"]["written"] > 0 for worker in settled()["workers"]):
                    break
        # Each worker sees the other's counts as of its own last flush (every 0.5 s), so right after the last
        # call one worker can still answer with the other's earlier count. Once a worker has answered whole, its
        # view can only stay whole (counts only grow, to the final ones): wait for a whole answer from each.
        deadline, whole_from = time.monotonic() + 20, set()
        while len(whole_from) < 2 and time.monotonic() < deadline:
            report = health(served.url)
            if whole(report):
                whole_from.add(report["workers"][0]["pid"])
            else:
                time.sleep(0.05)
        reports: list[dict[str, Any]] = []
        answered_by: set[int] = set()  # the answering worker comes first
        while len(answered_by) < 2 and len(reports) < 300:
            reports.append(health(served.url))
            answered_by.add(reports[-1]["workers"][0]["pid"])
        assert all(whole(report) for report in reports), [r for r in reports if not whole(r)][:1]
        assert len(answered_by) == 2, "one worker answered 300 /health probes: the test would prove nothing"
        for report in reports:
            written = [worker["recorder"]["written"] for worker in report["workers"]]
            assert sum(written) == sent and all(count > 0 for count in written), written
            assert report["status"] == "ok" and not any(worker["stale"] for worker in report["workers"])
        checked = [health(served.url)["dependencies"]["storage"]["checked_at"] for _ in range(2)]
        time.sleep(0.6)
        later = health(served.url)["dependencies"]["storage"]["checked_at"]
        assert later > min(checked), "the storage probe did not run again within 0.6 s at a 0.2 s interval"
    finally:
        served.stop()


def test_a_stale_worker_with_unwritten_records_degrades_the_server(tmp_path: Path) -> None:
    """A worker that stopped sharing its state (hung or killed) while it held records is not silently dropped."""
    ours, theirs = WorkerHealth(tmp_path, stale_after=5.0), WorkerHealth(tmp_path, stale_after=5.0)
    theirs.pid, theirs._own_file = 999_999, tmp_path / "health-999999.json"
    theirs.exchange({"ready": True, "recorder": {"healthy": True, "queue_depth": 7, "written": 3}})
    stale = json.loads(theirs._own_file.read_text())
    stale["at"] -= 60
    theirs._own_file.write_text(json.dumps(stale))
    ours.exchange({"ready": True, "recorder": {"healthy": True, "queue_depth": 0, "written": 5}})
    report = ours.report({"ready": True, "recorder": {"healthy": True, "queue_depth": 0, "written": 5}})
    assert [worker["stale"] for worker in report["workers"]] == [False, True]
    assert report["recorder"]["written"] == 8 and report["recorder"]["queue_depth"] == 7
    assert not WorkerHealth.healthy(report["workers"])
    stale["recorder"]["queue_depth"] = 0
    theirs._own_file.write_text(json.dumps(stale))
    ours.exchange({"ready": True, "recorder": {"healthy": True, "queue_depth": 0}})
    assert WorkerHealth.healthy(ours.report({"ready": True, "recorder": {"healthy": True}})["workers"])
    ours.withdraw()
    assert not (tmp_path / f"health-{ours.pid}.json").exists()


def test_recorders_combine_by_sum_and_worst_age() -> None:
    merged = combine_recorders(
        [
            {"written": 2, "queue_depth": 1, "oldest_unwritten_seconds": 0.5, "healthy": True, "running": True},
            {
                "written": 3,
                "queue_depth": 0,
                "oldest_unwritten_seconds": 2.0,
                "healthy": False,
                "running": True,
                "last_error": "OperationalError: locked",
            },
        ]
    )
    assert merged["written"] == 5 and merged["queue_depth"] == 1
    assert merged["oldest_unwritten_seconds"] == 2.0 and merged["healthy"] is False
    assert merged["last_error"] == "OperationalError: locked"
