"""What the stored-object tests (prompts, deployments) share: the installed `portico` command run in its own
process, a YAML file of declared objects, and a change made through one of two workers, timed until every worker
serves it."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import http
from tests.http.test_workers_sync_e2e import ADMIN, STREAK, Served, config_text
from tests.upstreams.server import UpstreamThread

PORTICO = str(Path(sys.executable).parent / "portico")
Step = tuple[str, str, str, dict[str, Any] | None, str]
"""A change through the admin API and what every worker must then answer: (name, method, path, body, answer)."""


def portico(*args: str, key: str | None = None) -> subprocess.CompletedProcess[str]:
    """The installed command; `key` is its $PORTICO_API_KEY (None: unset, whatever this process has)."""
    env = {k: v for k, v in os.environ.items() if k != "PORTICO_API_KEY"}
    if key is not None:
        env["PORTICO_API_KEY"] = key
    return subprocess.run([PORTICO, *args], check=False, capture_output=True, text=True, timeout=60, env=env)


def write_yaml(tmp_path: Path, kind: str, data: object) -> str:
    """`data` as a new YAML file; returns its path."""
    path = tmp_path / f"{kind}-{secrets.token_hex(3)}.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def two_workers_settle(tmp_path: Path, ask: Callable[[str], str], steps: list[Step]) -> dict[str, float]:
    """A real `portico serve` with two workers on one SQLite file: each step's change is made through the admin
    API, then `ask(url)` is repeated on fresh connections until STREAK answers in a row are the step's. Returns
    each step's seconds from the change's answer to the first of those answers; prints them."""
    from tests.upstreams import openai

    took: dict[str, float] = {}
    with UpstreamThread([openai.install]) as upstream:
        served = Served(tmp_path, "workers", config_text(upstream.url, f"sqlite:///{tmp_path}/portico.db"), workers=2)
        try:
            served.wait_healthy()
            for name, method, path, body, wanted in steps:
                data = json.dumps(body).encode() if body is not None else None
                written = http(method, f"{served.url}{path}", data, ADMIN)
                assert written.status in (200, 201, 204), written.body
                took[name] = _settle(lambda: ask(served.url), wanted, time.monotonic())
        finally:
            output = served.stop()
            print("\n".join(line for line in output.splitlines() if "portico.access" not in line)[-4000:])
    print("\ntwo workers, SQLite: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in took.items()))
    return took


def _settle(ask: Callable[[], str], wanted: str, since: float) -> float:
    """Seconds from `since` to the first of STREAK answers in a row that are `wanted`; fails after 10 s."""
    streak, streak_start = 0, since
    seen: list[tuple[float, str]] = []
    while time.monotonic() - since < 10:
        sent = time.monotonic()
        answer = ask()
        seen.append((round(sent - since, 2), answer))
        if answer == wanted:
            streak_start = sent if streak == 0 else streak_start
            streak += 1
            if streak == STREAK:
                return streak_start - since
        else:
            streak = 0
    counts = {answer: sum(1 for _, a in seen if a == answer) for _, answer in seen}
    pytest.fail(f"answers did not settle on {wanted!r} within 10 s: {counts}; last answers {seen[-8:]}")
