"""SIGTERM to `portico serve` drains what is in flight (JSON answers and streams) within the grace period,
flushes the call log, writes an access log line per request, and exits 0."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import http
from tests.gateway_server import free_port

PORTICO = [sys.executable, "-m", "portico.cli"]


def start(tmp_path: Path, workers: int, grace: float) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    config = tmp_path / "portico.yaml"
    config.write_text(
        f'storage: {{url: "sqlite:///{tmp_path}/portico.db"}}\nserver: {{shutdown_grace_seconds: {grace}}}\n'
        "providers: {mock: {models: [echo, slow-1500]}}\n"
    )
    process = subprocess.Popen(
        [*PORTICO, "serve", "--config", str(config), "--port", str(port), "--workers", str(workers)],
        env={**os.environ, "PORTICO_HOME": str(tmp_path)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if http("GET", f"{url}/health", timeout=1).status == 200:
                return process, url
        except OSError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            pytest.fail(f"portico serve did not become healthy: {process.communicate()[1]!r}")
        time.sleep(0.1)


def call(url: str, stream: bool, results: dict[str, object]) -> None:
    body = {"model": "mock/slow-1500", "messages": [{"role": "user", "content": "drain me"}], "stream": stream}
    request = urllib.request.Request(
        f"{url}/v1/chat/completions", json.dumps(body).encode(), {"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=20) as answer:
            results["stream" if stream else "json"] = (answer.status, answer.read().decode())
    except OSError as exc:
        results["stream" if stream else "json"] = exc


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_drains_requests_and_streams_flushes_the_call_log_and_exits_0(tmp_path: Path, workers: int) -> None:
    process, url = start(tmp_path, workers, grace=20)
    results: dict[str, object] = {}
    threads = [threading.Thread(target=call, args=(url, stream, results)) for stream in (False, True)]
    try:
        for thread in threads:
            thread.start()
        time.sleep(0.6)  # both are in flight: the mock upstream answers after 1.5 s
        process.send_signal(signal.SIGTERM)
        stderr = process.communicate(timeout=30)[1].decode()
    finally:
        process.kill()
        for thread in threads:
            thread.join(timeout=30)
    assert process.returncode == 0, stderr
    status, text = results["json"]  # type: ignore[misc]
    assert status == 200 and "Mock reply to: drain me" in text
    status, text = results["stream"]  # type: ignore[misc]
    assert status == 200 and text.rstrip().endswith("data: [DONE]")
    with sqlite3.connect(tmp_path / "portico.db") as db:
        rows = db.execute("SELECT status FROM request_logs").fetchall()
    assert sorted(rows) == [(200,), (200,)]
    access = [json.loads(line) for line in stderr.splitlines() if '"portico.access"' in line]
    chat = [line for line in access if line["path"] == "/v1/chat/completions"]
    assert len(chat) == 2 and all(line["status"] == 200 and line["latency_ms"] > 1000 for line in chat), access
    assert all(len(line["request_id"]) == 32 and line["method"] == "POST" for line in chat)
    assert "Traceback" not in stderr


def test_the_grace_period_bounds_the_drain(tmp_path: Path) -> None:
    process, url = start(tmp_path, 1, grace=0.5)
    results: dict[str, object] = {}
    thread = threading.Thread(target=call, args=(url, False, results))
    try:
        thread.start()
        time.sleep(0.4)
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
        elapsed = time.monotonic() - started
    finally:
        process.kill()
        thread.join(timeout=30)
    assert process.returncode == 0 and elapsed < 1.4, elapsed
    assert isinstance(results["json"], OSError) or results["json"][0] != 200  # type: ignore[index]
