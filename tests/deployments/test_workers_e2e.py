"""A deployment changed through one worker is served by every worker within a second: a real `portico serve`
with two workers on one SQLite file, asked on fresh connections until every answer uses the new version."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import http
from tests.http.test_workers_sync_e2e import ADMIN, STREAK, Served, config_text
from tests.upstreams.server import UpstreamThread

DEPLOYMENT = "/v1/admin/deployments"


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamThread]:
    from tests.upstreams import openai

    with UpstreamThread([openai.install]) as thread:
        yield thread


def model_served(url: str) -> str:
    body = {"key": "greeter", "messages": [{"role": "user", "content": "hi"}]}
    answer = http("POST", f"{url}/v2/deployments/invoke", json.dumps(body).encode(), ADMIN, timeout=5)
    assert answer.status in (200, 404), answer.body
    return str(answer.json()["model"]) if answer.status == 200 else "404"


def settle(url: str, wanted: str, since: float) -> float:
    """Seconds from `since` to the first of STREAK answers in a row that are `wanted`; fails after 10 s."""
    streak, streak_start = 0, since
    while time.monotonic() - since < 10:
        sent = time.monotonic()
        if model_served(url) == wanted:
            streak_start = sent if streak == 0 else streak_start
            streak += 1
            if streak == STREAK:
                return streak_start - since
        else:
            streak = 0
    pytest.fail(f"answers did not settle on {wanted!r} within 10 s")


def write(url: str, method: str, path: str, body: dict[str, Any]) -> None:
    written = http(method, f"{url}{path}", json.dumps(body).encode(), ADMIN)
    assert written.status in (200, 201), written.body


def test_two_workers_serve_an_updated_deployment_within_a_second(tmp_path: Path, upstream: UpstreamThread) -> None:
    served = Served(tmp_path, "workers", config_text(upstream.url, f"sqlite:///{tmp_path}/portico.db"), workers=2)
    prompt = {"messages": [{"role": "system", "content": "Be brief."}]}
    try:
        served.wait_healthy()
        took: dict[str, float] = {}
        write(served.url, "POST", DEPLOYMENT, {"key": "greeter", "model": "openai/model-one", "prompt": prompt})
        since = time.monotonic()
        took["created"] = settle(served.url, "model-one", since)
        write(served.url, "PUT", f"{DEPLOYMENT}/greeter", {"model": "openai/model-two", "prompt": prompt})
        since = time.monotonic()
        took["updated"] = settle(served.url, "model-two", since)
        write(served.url, "POST", f"{DEPLOYMENT}/greeter/rollback", {"version": 1})
        since = time.monotonic()
        took["rolled back"] = settle(served.url, "model-one", since)
        print("\ntwo workers, SQLite: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in took.items()))
        assert all(seconds < 1.0 for seconds in took.values()), took
    finally:
        served.stop()
