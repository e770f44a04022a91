"""Stored state across processes, the way an operator meets it: a virtual key or config created or revoked through
one worker (or instance) is live, or refused, on every other within a second. Real `portico serve` processes:
two workers on SQLite; two instances on PostgreSQL with Redis notification, and with Redis down (poll only)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import Response, http
from tests.gateway_server import free_port
from tests.upstreams.server import UpstreamThread

KEY = "sk-sync"
ADMIN = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
PORTICO = [sys.executable, "-m", "portico.cli"]
STREAK = 20  # consecutive answers on fresh connections, so that every worker has answered
HI = [{"role": "user", "content": "hello"}]


class Served:
    """One `portico serve` process (with its workers) on a free port."""

    def __init__(self, tmp_path: Path, name: str, config: str, workers: int = 1) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        path = tmp_path / f"{name}.yaml"
        path.write_text(config)
        env = {**os.environ, "PORTICO_HOME": str(tmp_path), "PORTICO_SECRET_KEY": "sync-test-secret"}
        command = [*PORTICO, "serve", "--config", str(path), "--host", "127.0.0.1", "--port", str(self.port)]
        self.process = subprocess.Popen(
            [*command, "--workers", str(workers)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        # Read as it comes: a pipe read only at stop() fills up (64 KiB, ~250 access-log lines), and a worker that
        # then logs anything blocks its event loop on the write.
        self._output: list[bytes] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        stream = self.process.stdout
        assert stream is not None
        with stream:  # closed once the server has gone (end of file), so no descriptor outlives it
            for chunk in iter(lambda: stream.read1(65536), b""):
                self._output.append(chunk)

    def _collected(self) -> str:
        self._reader.join(timeout=10)
        return b"".join(self._output).decode(errors="replace")

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                if http("GET", f"{self.url}/health", timeout=1).status == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.process.kill()
                self.process.wait(timeout=10)
                pytest.fail(f"portico serve did not become healthy:\n{self._collected()}")
            time.sleep(0.1)

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        output = self._collected()
        assert "Traceback" not in output, output
        return output


def config_text(upstream_url: str, storage_url: str, extra: str = "") -> str:
    return (
        f'auth: {{keys: ["{KEY}"]}}\n'
        f'providers:\n  openai: {{api_key: "sk-upstream", base_url: "{upstream_url}/v1"}}\n'
        f'storage: {{url: "{storage_url}"}}\n'
        "logging: {request_log: false}\n"
        f"{extra}"
    )


def chat(url: str, headers: dict[str, str]) -> Response:
    body = json.dumps({"model": "gpt-4o", "messages": HI}).encode()
    return http("POST", f"{url}/v1/chat/completions", body, {**ADMIN, **headers}, timeout=5)


def served(r: Response) -> bool:
    """Answered through the virtual key: without it `gpt-4o` names no provider and the gateway refuses."""
    return r.status == 200 and r.json()["choices"][0]["message"]["content"] == "Echo from gpt-4o: hello"


def refused(code: str) -> Callable[[Response], bool]:
    return lambda r: r.status == 400 and r.json()["error"]["code"] == code


def settle(url: str, headers: dict[str, str], wanted: Callable[[Response], bool], since: float) -> float:
    """Seconds from `since` until every answer is `wanted`: the start of the first run of STREAK wanted answers
    in a row, each on a fresh connection. Bounded: fails after 10 s."""
    streak_start: float | None = None
    streak = 0
    while time.monotonic() - since < 10:
        sent = time.monotonic()
        if wanted(chat(url, headers)):
            streak_start = sent if streak == 0 else streak_start
            streak += 1
            if streak == STREAK:
                assert streak_start is not None
                return streak_start - since
        else:
            streak = 0
    pytest.fail(f"answers did not settle within 10 s (headers {headers})")


def create_key(url: str, key_id: str) -> None:
    body = json.dumps({"provider": "openai", "api_key": "sk-virtual-1234", "id": key_id}).encode()
    created = http("POST", f"{url}/v1/admin/virtual-keys", body, ADMIN)
    assert created.status == 201, created.body


def delete(url: str, path: str) -> None:
    deleted = http("DELETE", f"{url}{path}", None, ADMIN)
    assert deleted.status == 204, deleted.body


def put_config(url: str, config_id: str, key_id: str) -> None:
    config = {"strategy": {"mode": "fallback"}, "targets": [{"virtual_key": key_id}]}
    stored = http("PUT", f"{url}/v1/admin/configs/{config_id}", json.dumps(config).encode(), ADMIN)
    assert stored.status == 200, stored.body


def round_trip(writer: str, readers: list[str]) -> dict[str, float]:
    """Create a key and a config through `writer`, then revoke both; the seconds from the write's answer until
    the change held on every reader (the slowest reader counts)."""
    key_id, config_id = f"vk-{secrets.token_hex(4)}", f"pc-{secrets.token_hex(4)}"
    by_key, by_config = {"x-portkey-virtual-key": key_id}, {"x-portkey-config": config_id}
    took: dict[str, float] = {}

    create_key(writer, key_id)
    since = time.monotonic()
    took["key live"] = max(settle(url, by_key, served, since) for url in readers)
    put_config(writer, config_id, key_id)
    since = time.monotonic()
    took["config live"] = max(settle(url, by_config, served, since) for url in readers)
    delete(writer, f"/v1/admin/configs/{config_id}")
    since = time.monotonic()
    took["config deleted"] = max(settle(url, by_config, refused("config_not_found"), since) for url in readers)
    delete(writer, f"/v1/admin/virtual-keys/{key_id}")
    since = time.monotonic()
    took["key revoked"] = max(settle(url, by_key, refused("virtual_key_not_found"), since) for url in readers)
    return took


def report(what: str, took: dict[str, float]) -> None:
    print(f"\n{what}: " + ", ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds in took.items()))


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamThread]:
    from tests.upstreams import openai

    with UpstreamThread([openai.install]) as thread:
        yield thread


def test_two_workers_share_keys_and_configs_within_a_second(tmp_path: Path, upstream: UpstreamThread) -> None:
    served = Served(tmp_path, "workers", config_text(upstream.url, f"sqlite:///{tmp_path}/portico.db"), workers=2)
    try:
        served.wait_healthy()
        took = round_trip(served.url, [served.url])
        report("two workers, SQLite", took)
        assert all(seconds < 1.0 for seconds in took.values()), took
    finally:
        served.stop()


def _postgres_url() -> str:
    import asyncio

    from tests.storage.conftest import postgres_url

    return asyncio.run(postgres_url())


def _redis_or_skip() -> None:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            if not sock.recv(16).startswith(b"+PONG"):
                pytest.skip("Redis at 127.0.0.1:6379 does not answer PING")
    except OSError as exc:
        pytest.skip(f"Redis at 127.0.0.1:6379 does not answer ({exc})")


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """`postgresql://.../test?schema=<fresh>`, dropped afterwards; skips when PostgreSQL does not answer."""
    import asyncio

    from tests.storage.conftest import drop_schema

    url = _postgres_url()
    schema = f"portico_sync_{secrets.token_hex(6)}"
    yield f"{url}?schema={schema}"
    asyncio.run(drop_schema(url, schema))


@pytest.mark.parametrize(
    ("notify", "limit"),
    [
        ("redis://127.0.0.1:6379/0", 1.0),  # notified: the poll is set to 30 s so only pub/sub can be this fast
        ("redis://127.0.0.1:1/0", 1.2),  # Redis down: the 0.5 s database poll alone
    ],
    ids=["redis-pubsub", "redis-down-poll-only"],
)
def test_two_instances_on_postgres_share_changes(
    tmp_path: Path, upstream: UpstreamThread, pg_schema: str, notify: str, limit: float
) -> None:
    if ":6379" in notify:
        _redis_or_skip()
    interval = 30 if ":6379" in notify else 0.5
    extra = f'  sync_interval_seconds: {interval}\n  notify_url: "{notify}"\n'
    text = config_text(upstream.url, pg_schema).replace(f'storage: {{url: "{pg_schema}"}}\n', "")
    text += f'storage:\n  url: "{pg_schema}"\n{extra}'
    first = Served(tmp_path, "first", text)
    second = Served(tmp_path, "second", text)
    try:
        first.wait_healthy()
        second.wait_healthy()
        time.sleep(0.3)  # the subscribers are listening
        took = round_trip(first.url, [second.url])
        report(f"two instances, PostgreSQL, {'Redis pub/sub' if ':6379' in notify else 'Redis down, poll only'}", took)
        assert all(seconds < limit for seconds in took.values()), took
        back = round_trip(second.url, [first.url])
        assert all(seconds < limit for seconds in back.values()), back
    finally:
        outputs = [first.stop(), second.stop()]
    if ":1/" in notify:
        warned = [line for out in outputs for line in out.splitlines() if "redis unreachable" in line]
        assert 1 <= len(warned) <= 2, outputs  # once per process and outage, not once per poll
