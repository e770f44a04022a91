"""A deployment changed through one worker is served by every worker within a second: a real `portico serve`
with two workers on one SQLite file, asked on fresh connections until every answer uses the new version."""

from __future__ import annotations

import json
from pathlib import Path

from tests.admin_helpers import two_workers_settle
from tests.conftest import http
from tests.http.test_workers_sync_e2e import ADMIN

DEPLOYMENT = "/v1/admin/deployments"


def model_served(url: str) -> str:
    body = {"key": "greeter", "messages": [{"role": "user", "content": "hi"}]}
    answer = http("POST", f"{url}/v2/deployments/invoke", json.dumps(body).encode(), ADMIN, timeout=5)
    assert answer.status in (200, 404), answer.body
    return str(answer.json()["model"]) if answer.status == 200 else "404"


def test_two_workers_serve_an_updated_deployment_within_a_second(tmp_path: Path) -> None:
    prompt = {"messages": [{"role": "system", "content": "Be brief."}]}
    took = two_workers_settle(
        tmp_path,
        model_served,
        [
            (
                "created",
                "POST",
                DEPLOYMENT,
                {"key": "greeter", "model": "openai/model-one", "prompt": prompt},
                "model-one",
            ),
            ("updated", "PUT", f"{DEPLOYMENT}/greeter", {"model": "openai/model-two", "prompt": prompt}, "model-two"),
            ("rolled back", "POST", f"{DEPLOYMENT}/greeter/rollback", {"version": 1}, "model-one"),
        ],
    )
    assert all(seconds < 1.0 for seconds in took.values()), took
