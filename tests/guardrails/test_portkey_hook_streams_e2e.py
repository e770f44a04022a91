"""Portkey's hooks on streams, through raw SSE and the `portkey-ai` client: the before-request results as the first
frame and the after-request results as the last one before `[DONE]` (only with strict OpenAI compliance off),
246 when a before-request check failed without denying, 446 before any token when one denies, and output hooks
that only report on a stream (the answer is relayed, never held back)."""

from __future__ import annotations

import json
from typing import Any

from portkey_ai import Portkey

from tests.conftest import KEY, Response, Stack

NOT_STRICT = {"x-portkey-strict-open-ai-compliance": "false"}
NEEDS_INVOICE = {"input_guardrails": [{"default.contains": {"operator": "any", "words": ["invoice"]}}]}
NO_ECHO = {"after_request_hooks": [{"id": "no-echo", "deny": True, "checks": [
    {"id": "default.regexMatch", "parameters": {"rule": "Echo", "not": True}}]}]}  # fmt: skip


def _stream(stack: Stack, config: dict[str, Any], text: str, headers: dict[str, str] | None = None) -> Response:
    sent = {"x-portkey-config": json.dumps(config), "x-portkey-provider": "openai", **(headers or {})}
    body = {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": text}]}
    return stack.post("/v1/chat/completions", body, headers=sent)


def _frames(answer: Response) -> list[Any]:
    lines = [line[6:] for line in answer.body.decode().split("\n") if line.startswith("data: ")]
    assert lines[-1] == "[DONE]", lines
    return [json.loads(line) for line in lines[:-1]]


def _text(frames: list[Any]) -> str:
    return "".join(f["choices"][0]["delta"].get("content") or "" for f in frames if f.get("choices"))


def test_before_hook_results_are_the_first_frame_and_a_failed_check_makes_it_246(stack: Stack) -> None:
    answer = _stream(stack, NEEDS_INVOICE, "hello there", NOT_STRICT)
    assert answer.status == 246, answer.body
    assert answer.headers["content-type"].startswith("text/event-stream")
    frames = _frames(answer)
    [hook] = frames[0]["hook_results"]["before_request_hooks"]
    assert hook["verdict"] is False and hook["deny"] is False
    assert hook["checks"][0]["id"] == "default.contains" and hook["checks"][0]["verdict"] is False
    assert "choices" not in frames[0]
    assert _text(frames[1:]) == "Echo from gpt-4o: hello there"
    assert not [f for f in frames[1:] if "hook_results" in f], "no output hooks: no last frame"


def test_strict_compliance_sends_no_hook_frames_but_keeps_the_status(stack: Stack) -> None:
    failed = _stream(stack, NEEDS_INVOICE, "hello there")
    assert failed.status == 246, failed.body
    assert not [f for f in _frames(failed) if "hook_results" in f]
    passed = _stream(stack, NEEDS_INVOICE, "my invoice please", NOT_STRICT)
    assert passed.status == 200, passed.body
    assert _frames(passed)[0]["hook_results"]["before_request_hooks"][0]["verdict"] is True


def test_a_denying_before_hook_refuses_the_stream_with_446_before_any_token(stack: Stack) -> None:
    config = {"before_request_hooks": [{"id": "needs-invoice", "deny": True, "checks": [
        {"id": "default.contains", "parameters": {"operator": "any", "words": ["invoice"]}}]}]}  # fmt: skip
    answer = _stream(stack, config, "hello", NOT_STRICT)
    assert answer.status == 446, answer.body
    assert answer.json()["error"]["type"] == "hooks_failed"
    assert answer.json()["hook_results"]["before_request_hooks"][0]["id"] == "needs-invoice"
    assert stack.upstream.requests == []


def test_after_hooks_only_report_on_a_stream_in_the_last_frame_before_done(stack: Stack) -> None:
    answer = _stream(stack, {**NEEDS_INVOICE, **NO_ECHO}, "an invoice", NOT_STRICT)
    assert answer.status == 200, answer.body
    frames = _frames(answer)
    assert frames[0]["hook_results"]["before_request_hooks"][0]["verdict"] is True
    assert _text(frames) == "Echo from gpt-4o: an invoice", "relayed although the denying check failed"
    last = frames[-1]["hook_results"]
    assert list(last) == ["after_request_hooks"]
    [hook] = last["after_request_hooks"]
    assert hook["id"] == "no-echo" and hook["verdict"] is False and hook["deny"] is True
    assert hook["checks"][0]["data"]["explanation"].startswith("the text matches /Echo/")


def test_the_portkey_sdk_reads_both_frames_from_the_stream(stack: Stack) -> None:
    client = Portkey(
        base_url=stack.gateway.url + "/v1",
        api_key=KEY,
        provider="openai",
        config={**NEEDS_INVOICE, **NO_ECHO},
        strict_open_ai_compliance=False,
        max_retries=0,
    )
    asked: Any = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hello"}], stream=True
    )
    chunks = list(asked)
    results = [c.model_extra["hook_results"] for c in chunks if c.model_extra and "hook_results" in c.model_extra]
    assert [list(r) for r in results] == [["before_request_hooks"], ["after_request_hooks"]]
    assert results[0]["before_request_hooks"][0]["verdict"] is False
    assert results[1]["after_request_hooks"][0]["verdict"] is False
    text = "".join(c.choices[0].delta.content or "" for c in chunks if getattr(c, "choices", None))
    assert text == "Echo from gpt-4o: hello"
