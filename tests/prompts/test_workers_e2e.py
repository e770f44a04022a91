"""An updated prompt is served by every worker within a second: a real `portico serve` with two workers on one
SQLite file, the prompt changed through one of them, the router asked on fresh connections until every answer
uses the new version."""

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


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamThread]:
    from tests.upstreams import openai

    with UpstreamThread([openai.install]) as thread:
        yield thread


def answer(url: str) -> str:
    body = {"model": "openai/gpt-4o", "messages": [], "prompt": {"id": "greeting", "version": "latest"}}
    response = http("POST", f"{url}/v2/router/chat/completions", json.dumps(body).encode(), ADMIN, timeout=5)
    assert response.status in (200, 404), response.body
    return str(response.json()["choices"][0]["message"]["content"]) if response.status == 200 else "404"


def settle(url: str, wanted: str, since: float) -> float:
    """Seconds from `since` to the first of STREAK answers in a row that are `wanted`; fails after 10 s."""
    streak, streak_start = 0, since
    while time.monotonic() - since < 10:
        sent = time.monotonic()
        if answer(url) == wanted:
            streak_start = sent if streak == 0 else streak_start
            streak += 1
            if streak == STREAK:
                return streak_start - since
        else:
            streak = 0
    pytest.fail(f"answers did not settle on {wanted!r} within 10 s")


def write(url: str, method: str, path: str, text: str) -> None:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": text}]}
    if method == "POST":
        body["id"] = "greeting"
    written = http(method, f"{url}{path}", json.dumps(body).encode(), ADMIN)
    assert written.status in (200, 201), written.body


def test_two_workers_serve_an_updated_prompt_within_a_second(tmp_path: Path, upstream: UpstreamThread) -> None:
    served = Served(tmp_path, "workers", config_text(upstream.url, f"sqlite:///{tmp_path}/portico.db"), workers=2)
    try:
        served.wait_healthy()
        took: dict[str, float] = {}
        write(served.url, "POST", "/v1/admin/prompts", "version one")
        since = time.monotonic()
        took["created"] = settle(served.url, "Echo from gpt-4o: version one", since)
        write(served.url, "PUT", "/v1/admin/prompts/greeting", "version two")
        since = time.monotonic()
        took["updated"] = settle(served.url, "Echo from gpt-4o: version two", since)
        deleted = http("DELETE", f"{served.url}/v1/admin/prompts/greeting", None, ADMIN)
        assert deleted.status == 204
        since = time.monotonic()
        took["deleted"] = settle(served.url, "404", since)
        print("\ntwo workers, SQLite: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in took.items()))
        assert all(seconds < 1.0 for seconds in took.values()), took
    finally:
        served.stop()
