"""Custom guardrails stored through the admin API and named by requests: a combination of built-ins, and webhooks
that refuse, accept, or time out (failing closed or open as configured)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

from tests.conftest import KEY, Response, Stack, http
from tests.upstreams.server import UpstreamState, UpstreamThread

ROUTER = "/v2/router/chat/completions"


def _install_webhooks(app: web.Application, state: UpstreamState) -> None:
    async def judge(request: web.Request) -> web.Response:
        body = await request.json()
        state.requests.append({"path": request.path, "body": body})
        return web.json_response({"verdict": "forbidden" not in body["text"], "reason": "says forbidden"})

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.json_response({"verdict": True})

    async def broken(request: web.Request) -> web.Response:
        return web.Response(status=500, text="oops")

    app.router.add_post("/judge", judge)
    app.router.add_post("/slow", slow)
    app.router.add_post("/broken", broken)


@pytest.fixture(scope="module")
def webhooks() -> Iterator[UpstreamThread]:
    with UpstreamThread([_install_webhooks]) as thread:
        yield thread


def _put(stack: Stack, guardrail_id: str, spec: dict[str, Any]) -> Response:
    headers = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
    url = f"{stack.gateway.url}/v1/admin/guardrails/{guardrail_id}"
    return http("PUT", url, json.dumps(spec).encode(), headers)


def _ask(stack: Stack, text: str, guardrail_id: str, phase: str = "input") -> Response:
    body = {
        "model": "openai/gpt-4o",
        "messages": [{"role": "user", "content": text}],
        "guardrails": [{"id": guardrail_id, "execute_on": phase}],
    }
    return stack.post(ROUTER, body)


def test_a_stored_combination_of_builtins_refuses_and_allows(stack: Stack) -> None:
    spec = {
        "description": "no competitors, no card numbers, short",
        "checks": [
            {"kind": "contains", "params": {"words": ["acme corp"], "operator": "none"}},
            {"kind": "pii", "params": {"entities": ["credit_card"]}},
            {"kind": "length", "params": {"max": 200}},
        ],
    }
    stored = _put(stack, "house-rules", spec)
    assert stored.status == 200, stored.body
    assert stack.get("/v1/admin/guardrails/house-rules").json()["checks"][0]["kind"] == "contains"
    assert "house-rules" in [g["id"] for g in stack.get("/v1/admin/guardrails").json()["data"]]
    refused = _ask(stack, "compare us with ACME Corp", "house-rules")
    assert refused.status == 400 and refused.json()["error"]["code"] == "house-rules"
    assert "denied word" in refused.json()["error"]["message"]
    assert stack.upstream.requests == []
    assert _ask(stack, "email is fine: a@b.nl", "house-rules").status == 200
    deleted = http("DELETE", f"{stack.gateway.url}/v1/admin/guardrails/house-rules", None,
                   {"authorization": f"Bearer {KEY}"})  # fmt: skip
    assert deleted.status == 204
    assert _ask(stack, "hi", "house-rules").json()["error"]["code"] == "unknown_guardrail"


@pytest.mark.parametrize(
    ("guardrail_id", "spec", "fragment"),
    [
        ("bad-regex", {"checks": [{"kind": "regex_deny", "params": {"pattern": "("}}]}, "regular expression"),
        ("no-kind", {"checks": [{"kind": "telepathy"}]}, "unknown guardrail kind"),
        ("neither", {"description": "nothing"}, "either 'checks'"),
        ("orq_pii_detection", {"checks": [{"kind": "pii"}]}, "built-in"),
        ("bad-url", {"webhook": {"url": "ftp://x"}}, "http(s) URL"),
    ],
)
def test_bad_specs_are_refused_before_storing(stack: Stack, guardrail_id: str, spec: Any, fragment: str) -> None:
    answer = _put(stack, guardrail_id, spec)
    assert answer.status == 422, answer.body
    assert fragment in answer.json()["error"]["message"]
    assert stack.get(f"/v1/admin/guardrails/{guardrail_id}").status == 404


def test_webhook_guardrail_decides_on_the_answer(stack: Stack, webhooks: UpstreamThread) -> None:
    assert _put(stack, "judge", {"webhook": {"url": webhooks.url + "/judge", "timeout_ms": 2000}}).status == 200
    assert _ask(stack, "all good", "judge", "output").status == 200
    refused = _ask(stack, "this is forbidden", "judge", "output")
    assert refused.status == 400 and refused.json()["error"]["code"] == "judge"
    assert "says forbidden" in refused.json()["error"]["message"]
    seen = [r["body"] for r in webhooks.state.requests if r["path"] == "/judge"]
    assert seen[-1]["phase"] == "output" and seen[-1]["text"] == "Echo from gpt-4o: this is forbidden"


@pytest.mark.parametrize(("on_error", "status"), [("deny", 400), ("allow", 200)])
@pytest.mark.parametrize("path", ["/slow", "/broken"])
def test_a_failing_webhook_fails_as_configured(
    stack: Stack, webhooks: UpstreamThread, on_error: str, status: int, path: str
) -> None:
    spec = {"webhook": {"url": webhooks.url + path, "timeout_ms": 200, "on_error": on_error}}
    assert _put(stack, f"hook-{on_error}", spec).status == 200
    answer = _ask(stack, "hello", f"hook-{on_error}")
    assert answer.status == status, answer.body
    if status == 400:
        assert "on_error: deny" in answer.json()["error"]["message"]
        assert stack.upstream.requests == []
