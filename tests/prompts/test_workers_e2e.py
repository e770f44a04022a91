"""An updated prompt is served by every worker within a second: a real `portico serve` with two workers on one
SQLite file, the prompt changed through one of them, the router asked on fresh connections until every answer
uses the new version."""

from __future__ import annotations

import json
from pathlib import Path

from tests.admin_helpers import two_workers_settle
from tests.conftest import http
from tests.http.test_workers_sync_e2e import ADMIN

PROMPTS = "/v1/admin/prompts"


def answer(url: str) -> str:
    body = {"model": "openai/gpt-4o", "messages": [], "prompt": {"id": "greeting", "version": "latest"}}
    response = http("POST", f"{url}/v2/router/chat/completions", json.dumps(body).encode(), ADMIN, timeout=5)
    assert response.status in (200, 404), response.body
    return str(response.json()["choices"][0]["message"]["content"]) if response.status == 200 else "404"


def test_two_workers_serve_an_updated_prompt_within_a_second(tmp_path: Path) -> None:
    def says(text: str) -> dict[str, object]:
        return {"messages": [{"role": "user", "content": text}]}

    took = two_workers_settle(
        tmp_path,
        answer,
        [
            ("created", "POST", PROMPTS, {"id": "greeting", **says("version one")}, "Echo from gpt-4o: version one"),
            ("updated", "PUT", f"{PROMPTS}/greeting", says("version two"), "Echo from gpt-4o: version two"),
            ("deleted", "DELETE", f"{PROMPTS}/greeting", None, "404"),
        ],
    )
    assert all(seconds < 1.0 for seconds in took.values()), took
