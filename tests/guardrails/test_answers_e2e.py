"""Answers the guardrail stages rewrite, against an upstream that answers the user's text verbatim (streamed in
3-character pieces, so placeholders arrive split across chunks): PII restored, almost-JSON healed or refused, and
call records that hold verdicts but never a redacted value."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.config.test_check_config import run, write
from tests.conftest import KEY, Response, http, stack_settings
from tests.gateway_server import GatewayThread
from tests.upstreams.server import UpstreamState, UpstreamThread, last_user_text

ROUTER = "/v2/router/chat/completions"
EMAIL, IBAN = "anna.smit@example.nl", "NL91ABNA0417164300"


def _install_verbatim(app: web.Application, state: UpstreamState) -> None:
    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        state.requests.append({"body": body})
        text = last_user_text(body["messages"])
        if "FLAKY" in text:  # answers differently when asked again: a retry can succeed
            seen = text in state.notes
            state.notes.append(text)
            text = text.replace("FLAKY", "steady") if seen else text
        if text.startswith("FAIL:"):  # an upstream that quotes the input in its error, as some do
            error = {"message": f"cannot process: {text}", "type": "invalid_request_error"}
            return web.json_response({"error": error}, status=400)
        if not body.get("stream"):
            message = {"role": "assistant", "content": text}
            return web.json_response({"id": "c1", "object": "chat.completion", "created": 1, "model": body["model"],
                                      "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]})  # fmt: skip
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        base = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": body["model"]}
        for start in range(0, len(text), 3):
            delta = {"content": text[start : start + 3]}
            chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
            await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        done = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        await response.write(b"data: " + json.dumps(done).encode() + b"\n\ndata: [DONE]\n\n")
        return response

    app.router.add_post("/v1/chat/completions", chat)

    async def moderations(request: web.Request) -> web.Response:
        body = await request.json()
        state.requests.append({"moderation": body, "authorization": request.headers.get("authorization")})
        if "OUTAGE" in body["input"]:
            return web.json_response({"error": {"message": "down"}}, status=503)
        if "SLOW" in body["input"]:
            await asyncio.sleep(1.5)
        violent = "punch" in body["input"]
        categories = {"violence": violent, "sexual": False, "hate": False}
        # "shove": not flagged by the provider, but scored above the default threshold (0.5)
        violence = 0.93 if violent else 0.62 if "shove" in body["input"] else 0.01
        scores = {"violence": violence, "sexual": 0.001, "hate": 0.002}
        result = {"flagged": violent, "categories": categories, "category_scores": scores}
        return web.json_response({"id": "modr-1", "model": body.get("model"), "results": [result]})

    app.router.add_post("/v1/moderations", moderations)


class Verbatim:
    def __init__(self, gateway: GatewayThread, upstream: UpstreamThread) -> None:
        self.gateway, self.upstream = gateway, upstream

    def ask(
        self,
        text: str,
        *guards: str,
        stream: bool = False,
        output: bool = False,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> Response:
        body = {
            "model": "openai/gpt-4o",
            "messages": [{"role": "user", "content": text}],
            "guardrails": [{"id": g, "execute_on": "output" if "healing" in g or output else "input"} for g in guards],
            "stream": stream,
            **extra,
        }
        sent = {"content-type": "application/json", "authorization": f"Bearer {KEY}", **(headers or {})}
        return http("POST", self.gateway.url + ROUTER, json.dumps(body).encode(), sent)

    def record(self, request_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + 5
        while True:
            one = http("GET", f"{self.gateway.url}/v1/logs/{request_id}", None, {"authorization": f"Bearer {KEY}"})
            if one.status == 200:
                found: dict[str, Any] = one.json()
                return found
            assert time.monotonic() < deadline, f"no call record for {request_id}"
            time.sleep(0.02)


@pytest.fixture(scope="module")
def verbatim() -> Iterator[Verbatim]:
    with UpstreamThread([_install_verbatim]) as up:
        settings = stack_settings(up.url, logging={"request_log": True})
        with GatewayThread(settings) as gateway:
            yield Verbatim(gateway, up)


def _streamed_text(answer: Response) -> str:
    frames = [line[6:] for line in answer.body.decode().split("\n") if line.startswith("data: ")]
    events = [json.loads(f) for f in frames if f != "[DONE]"]
    assert not [e for e in events if "error" in e], events
    return "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e.get("choices"))


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_redaction_round_trip_with_placeholders_split_across_chunks(verbatim: Verbatim, stream: bool) -> None:
    verbatim.upstream.state.requests.clear()
    text = f"Send the invoice to {EMAIL} and pay {IBAN} (again: {EMAIL})."
    full = {"x-portico-log-bodies": "full"}  # the bodies kept in the log are masked of what was redacted too
    answer = verbatim.ask(text, "portico_pii_redaction", stream=stream, headers=full)
    assert answer.status == 200, answer.body
    sent = verbatim.upstream.state.requests[-1]["body"]["messages"][0]["content"]
    assert sent == "Send the invoice to [EMAIL_1] and pay [IBAN_1] (again: [EMAIL_1])."
    got = _streamed_text(answer) if stream else answer.json()["choices"][0]["message"]["content"]
    assert got == text
    record = verbatim.record(answer.headers["x-request-id"])
    assert "Send the invoice to [PII] and pay [PII]" in record["request_body"] and record["response_body"]
    assert EMAIL not in json.dumps(record) and IBAN not in json.dumps(record)
    assert record["metadata"]["guardrails"] == [
        {"id": "portico_pii_redaction", "phase": "input", "passed": True, "redacted": {"email": 1, "iban": 1}}
    ]


def test_verdicts_are_in_the_call_record_without_the_matched_text(verbatim: Verbatim) -> None:
    answer = verbatim.ask(f"my iban is {IBAN}", "orq_pii_detection")
    assert answer.status == 400
    record = verbatim.record(answer.headers["x-request-id"])
    assert record["metadata"]["guardrails"] == [
        {"id": "orq_pii_detection", "phase": "input", "passed": False, "reason": "personal data found (iban)",
         "found": ["iban"]}
    ]  # fmt: skip
    assert IBAN not in json.dumps(record)
    passed = verbatim.ask("nothing personal", "orq_pii_detection")
    record = verbatim.record(passed.headers["x-request-id"])
    assert record["metadata"]["guardrails"] == [{"id": "orq_pii_detection", "phase": "input", "passed": True}]


JSON_FORMAT = {"response_format": {"type": "json_object"}}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize(
    ("answer", "healed"),
    [
        ('```json\n{"city": "Paris", "tags": ["a", "b",],}\n```', {"city": "Paris", "tags": ["a", "b"]}),
        ('Sure! ```json\n{"ok": true}\n``` Anything else?', {"ok": True}),
        ('{"items": [{"id": "x"}, {"id": "y"}', {"items": [{"id": "x"}, {"id": "y"}]}),
        ('{"already": "valid"}', {"already": "valid"}),
    ],
)
def test_healing_repairs_almost_json(verbatim: Verbatim, answer: str, healed: Any, stream: bool) -> None:
    reply = verbatim.ask(answer, "portico_response_healing", stream=stream, **JSON_FORMAT)
    assert reply.status == 200, reply.body
    text = _streamed_text(reply) if stream else reply.json()["choices"][0]["message"]["content"]
    assert json.loads(text) == healed


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        ('{"city": "Par', "inside a string"),
        ('{"count": 12', "inside a value"),
        ("I cannot answer in JSON.", "not valid JSON"),
        ('```json\n{"a": 1}\n``` or ```json\n{"a": 2}\n```', "several code blocks"),
    ],
)
def test_healing_refuses_what_it_cannot_repair_unambiguously(verbatim: Verbatim, answer: str, why: str) -> None:
    reply = verbatim.ask(answer, "portico_response_healing", **JSON_FORMAT)
    assert reply.status == 400, reply.body
    error = reply.json()["error"]
    assert error["type"] == "guardrail_violation" and error["code"] == "portico_response_healing"
    assert why in error["message"]
    streamed = verbatim.ask(answer, "portico_response_healing", stream=True, **JSON_FORMAT)
    frames = [line[6:] for line in streamed.body.decode().split("\n") if line.startswith("data: ")]
    assert [json.loads(f)["error"]["code"] for f in frames if f != "[DONE]"] == ["portico_response_healing"]


def test_healing_checks_the_response_format_schema(verbatim: Verbatim) -> None:
    schema = {"type": "object", "required": ["city"], "properties": {"city": {"type": "string"}}}
    response_format = {"type": "json_schema", "json_schema": {"name": "place", "schema": schema}}
    ok = verbatim.ask('{"city": "Oslo",}', "portico_response_healing", response_format=response_format)
    assert ok.status == 200 and json.loads(ok.json()["choices"][0]["message"]["content"]) == {"city": "Oslo"}
    bad = verbatim.ask('{"town": "Oslo"}', "portico_response_healing", response_format=response_format)
    assert bad.status == 400 and "'city' is a required property" in bad.json()["error"]["message"]


def test_inputs_marked_is_pii_are_masked_in_the_call_record(verbatim: Verbatim) -> None:
    name = "Jan Jansen"
    body = {
        "model": "openai/gpt-4o",
        "messages": [{"role": "user", "content": "FAIL: hello {{name}} from {{city}}"}],
        "orq": {"inputs": [{"key": "name", "value": name, "is_pii": True}, {"key": "city", "value": "Delft"}]},
        "metadata": {"customer": name},
    }
    headers = {"content-type": "application/json", "authorization": f"Bearer {KEY}"}
    answer = http("POST", verbatim.gateway.url + ROUTER, json.dumps(body).encode(), headers)
    assert answer.status == 400 and name in answer.json()["error"]["message"], "the client sent it: it may see it"
    sent = verbatim.upstream.state.requests[-1]["body"]["messages"][0]["content"]
    assert sent == f"FAIL: hello {name} from Delft", "the model gets the value"
    record = verbatim.record(answer.headers["x-request-id"])
    assert name not in json.dumps(record)
    assert "hello [PII] from Delft" in record["error_message"] and record["metadata"]["customer"] == "[PII]"


def test_on_fail_retry_asks_the_model_once_more(verbatim: Verbatim) -> None:
    headers = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
    for name, on_fail in [("flaky-retry", "retry"), ("flaky-deny", "deny")]:
        spec = {"checks": [{"kind": "regex_deny", "params": {"pattern": "FLAKY"}}], "on_fail": on_fail}
        url = f"{verbatim.gateway.url}/v1/admin/guardrails/{name}"
        assert http("PUT", url, json.dumps(spec).encode(), headers).status == 200
    state = verbatim.upstream.state
    state.requests.clear()
    retried = verbatim.ask("a FLAKY answer 1", "flaky-retry", output=True)
    assert retried.status == 200, retried.body
    assert retried.json()["choices"][0]["message"]["content"] == "a steady answer 1"
    assert len(state.requests) == 2
    record = verbatim.record(retried.headers["x-request-id"])
    assert [v["passed"] for v in record["metadata"]["guardrails"]] == [False, True]
    state.requests.clear()
    denied = verbatim.ask("a FLAKY answer 2", "flaky-deny", output=True)
    assert denied.status == 400 and len(state.requests) == 1
    state.requests.clear()
    twice = verbatim.ask("a FLAKY answer 2", "flaky-retry", output=True)  # already seen: steady; still checked
    assert twice.status == 200 and len(state.requests) == 1


def test_a_retried_answer_that_fails_again_is_refused(verbatim: Verbatim) -> None:
    headers = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
    spec = {"checks": [{"kind": "contains", "params": {"words": ["answer"], "operator": "none"}}], "on_fail": "retry"}
    url = f"{verbatim.gateway.url}/v1/admin/guardrails/never-answer"
    assert http("PUT", url, json.dumps(spec).encode(), headers).status == 200
    verbatim.upstream.state.requests.clear()
    refused = verbatim.ask("a FLAKY answer 3", "never-answer", output=True)
    assert refused.status == 400 and refused.json()["error"]["code"] == "never-answer"
    assert len(verbatim.upstream.state.requests) == 2, "asked exactly once more"


def test_moderation_by_a_configured_provider(verbatim: Verbatim) -> None:
    headers = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
    params = {"category": "harmful", "provider": "openai", "timeout_ms": 2000}
    for name, extra in [("openai-moderation", {}), ("openai-moderation-open", {"on_error": "allow"})]:
        spec = {"checks": [{"kind": "moderation", "params": {**params, **extra}}]}
        url = f"{verbatim.gateway.url}/v1/admin/guardrails/{name}"
        assert http("PUT", url, json.dumps(spec).encode(), headers).status == 200
    state = verbatim.upstream.state
    state.requests.clear()
    refused = verbatim.ask("I will punch him", "openai-moderation")
    assert refused.status == 400 and "flagged by openai (violence)" in refused.json()["error"]["message"]
    assert [r.get("moderation", {}).get("model") for r in state.requests] == ["omni-moderation-latest"]
    assert state.requests[0]["authorization"] == "Bearer sk-upstream", "the provider's own key"
    assert verbatim.ask("a calm question", "openai-moderation").status == 200
    assert verbatim.ask("OUTAGE now", "openai-moderation").status == 400, "fails closed by default"
    assert verbatim.ask("OUTAGE now", "openai-moderation-open").status == 200
    spec = {"checks": [{"kind": "moderation", "params": {**params, "provider": "nope"}}]}
    bad = http("PUT", f"{verbatim.gateway.url}/v1/admin/guardrails/bad-mod", json.dumps(spec).encode(), headers)
    assert bad.status == 422 and "not configured" in bad.json()["error"]["message"]


def test_on_fail_retry_on_a_stream_checks_the_held_answer_and_asks_once_more_unstreamed(verbatim: Verbatim) -> None:
    headers = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
    specs = {
        "flaky-retry-stream": {"checks": [{"kind": "regex_deny", "params": {"pattern": "FLAKY"}}], "on_fail": "retry"},
        "never-answer-stream": {
            "checks": [{"kind": "contains", "params": {"words": ["answer"], "operator": "none"}}],
            "on_fail": "retry",
        },
    }
    for name, spec in specs.items():
        url = f"{verbatim.gateway.url}/v1/admin/guardrails/{name}"
        assert http("PUT", url, json.dumps(spec).encode(), headers).status == 200
    state = verbatim.upstream.state
    state.requests.clear()
    retried = verbatim.ask("a FLAKY answer 5", "flaky-retry-stream", output=True, stream=True)
    assert retried.status == 200, retried.body
    assert _streamed_text(retried) == "a steady answer 5"
    assert "FLAKY" not in retried.body.decode(), "nothing of the refused answer was sent"
    assert [bool(r["body"].get("stream")) for r in state.requests] == [True, False]
    record = verbatim.record(retried.headers["x-request-id"])
    assert [v["passed"] for v in record["metadata"]["guardrails"]] == [False, True]
    state.requests.clear()
    refused = verbatim.ask("a FLAKY answer 6", "never-answer-stream", output=True, stream=True)
    frames = [line[6:] for line in refused.body.decode().split("\n") if line.startswith("data: ")]
    assert [json.loads(f)["error"]["code"] for f in frames if f != "[DONE]"] == ["never-answer-stream"]
    assert len(state.requests) == 2, "asked exactly once more"


def test_provider_moderation_thresholds_and_its_timeout_failing_closed_or_open(verbatim: Verbatim) -> None:
    headers = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
    params = {"category": "harmful", "provider": "openai", "timeout_ms": 300}
    specs: dict[str, dict[str, Any]] = {
        "mod-strict": {},
        "mod-lenient": {"threshold": 0.9},
        "mod-open": {"on_error": "allow"},
    }
    for name, extra in specs.items():
        spec = {"checks": [{"kind": "moderation", "params": {**params, **extra}}]}
        url = f"{verbatim.gateway.url}/v1/admin/guardrails/{name}"
        assert http("PUT", url, json.dumps(spec).encode(), headers).status == 200
    scored = verbatim.ask("I will shove him", "mod-strict")
    assert scored.status == 400 and "(violence)" in scored.json()["error"]["message"], "score 0.62 >= 0.5"
    assert verbatim.ask("I will shove him", "mod-lenient").status == 200, "0.62 < 0.9 and not flagged"
    assert verbatim.ask("I will punch him", "mod-lenient").status == 400, "flagged counts at any threshold"
    state = verbatim.upstream.state
    state.requests.clear()
    started = time.monotonic()
    closed = verbatim.ask("SLOW question", "mod-strict")
    assert closed.status == 400 and "refused" in closed.json()["error"]["message"], closed.body
    assert time.monotonic() - started < 1.2, "the guardrail's own timeout, not the provider's answer"
    assert [r for r in state.requests if "body" in r] == [], "fails closed: no chat call"
    opened = verbatim.ask("SLOW question", "mod-open")
    assert opened.status == 200, opened.body
    record = verbatim.record(opened.headers["x-request-id"])
    [verdict] = record["metadata"]["guardrails"]
    assert verdict["passed"] is True and verdict["reason"].endswith("failed (UpstreamTimeout); allowed"), verdict


def test_configured_moderation_provider_serves_the_builtin_moderation_ids(verbatim: Verbatim) -> None:
    moderation = {"provider": "openai", "threshold": 0.5, "timeout_ms": 300, "on_error": "deny"}
    settings = stack_settings(verbatim.upstream.url, guardrails={"moderation": moderation})
    state = verbatim.upstream.state
    with GatewayThread(settings) as gateway:
        own = Verbatim(gateway, verbatim.upstream)
        state.requests.clear()
        refused = own.ask("I will shove him", "orq_harmful_moderation")
        assert refused.status == 400, refused.body
        assert "flagged by openai (violence)" in refused.json()["error"]["message"]
        assert [r["moderation"]["input"] for r in state.requests] == ["I will shove him"], "no chat call"
        assert own.ask("an explicit sex scene", "orq_sexual_moderation").status == 200, "the provider decides"
        assert own.ask("SLOW question", "orq_harmful_moderation").status == 400, "timeout: fails closed"
    assert verbatim.ask("I will shove him", "orq_harmful_moderation").status == 200, "local word lists without it"


def test_check_config_refuses_a_moderation_provider_that_is_not_configured(tmp_path: Path) -> None:
    config = write(tmp_path, "guardrails: {moderation: {provider: nope, threshold: 0.5}}\n")
    checked = run("check-config", config)
    assert checked.returncode == 1
    assert "guardrails.moderation.provider: provider 'nope' is not configured" in checked.stderr
    bad = run("check-config", write(tmp_path, "guardrails: {moderation: {provider: openai, threshold: 2}}\n"))
    assert bad.returncode == 1 and "guardrails.moderation.threshold" in bad.stderr, bad.stderr
