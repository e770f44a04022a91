"""Bad input and failing upstreams: the right status and a clear JSON body, and the gateway keeps answering."""

from __future__ import annotations

import json
import time
from typing import Any

import openai
import pytest

from tests.conftest import KEY, Stack
from tests.spec_schemas import validate_vllm_422

OK: dict[str, Any] = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


def assert_error(stack: Stack, response: Any, status: int, *, code: str | None = None) -> dict[str, Any]:
    assert response.status == status, response.body
    body = json.loads(response.body)
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert "Traceback" not in response.body.decode()
    assert "sk-upstream" not in response.body.decode() and "sk-vllm" not in response.body.decode()
    if code is not None:
        assert body["error"]["code"] == code
    assert stack.get("/health").status == 200  # still alive
    return body


def test_validation_errors_are_422_in_both_shapes(stack: Stack) -> None:
    body = assert_error(stack, stack.post("/v1/chat/completions", {**OK, "temperature": 9}), 422)
    validate_vllm_422(body)
    assert body["detail"][0]["loc"] == ["body", "temperature"]
    assert body["error"]["param"] == "temperature"
    orq = assert_error(stack, stack.post("/v2/router/chat/completions", {**OK, "metadata": {"k": "v" * 600}}), 422)
    assert orq["code"] == "422" and orq["message"]
    missing = assert_error(stack, stack.post("/v2/router/chat/completions", {"messages": OK["messages"]}), 422)
    assert missing["detail"][0] == {"loc": ["body", "model"], "msg": "Field required", "type": "missing"}


def test_openai_sdk_surfaces_the_validation_message(stack: Stack) -> None:
    client = openai.OpenAI(base_url=stack.gateway.url + "/v1", api_key=KEY, max_retries=0)
    with pytest.raises(openai.UnprocessableEntityError) as info:
        client.chat.completions.create(model="openai/gpt-4o", messages=OK["messages"], top_p=3)
    assert "top_p" in str(info.value)


@pytest.mark.parametrize("raw", [b"{not json", b"", b"\xff\xfe"])
def test_malformed_json_is_400(stack: Stack, raw: bytes) -> None:
    assert_error(stack, stack.post_raw("/v1/chat/completions", raw), 400, code="invalid_json")


def test_non_object_body_is_422(stack: Stack) -> None:
    assert_error(stack, stack.post_raw("/v1/chat/completions", b"[1, 2]"), 422)


def test_auth(stack: Stack) -> None:
    assert_error(stack, stack.post("/v1/chat/completions", OK, key=None), 401, code="invalid_api_key")
    assert_error(stack, stack.post("/v1/chat/completions", OK, key="sk-wrong"), 401)
    ok = stack.post(
        "/v1/chat/completions",
        OK,
        key=None,
        headers={"x-portkey-api-key": KEY, "authorization": "Bearer OPENAI_API_KEY"},
    )
    assert ok.status == 200
    lower_scheme = stack.post("/v1/chat/completions", OK, key=None, headers={"authorization": f"bearer  {KEY} "})
    assert lower_scheme.status == 200  # the scheme is case-insensitive, the token's surrounding blanks ignored
    basic = stack.post("/v1/chat/completions", OK, key=None, headers={"authorization": f"Basic {KEY}"})
    assert_error(stack, basic, 401, code="invalid_api_key")
    client = openai.OpenAI(base_url=stack.gateway.url + "/v1", api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(**OK)


def test_unknown_provider_and_model(stack: Stack) -> None:
    body = assert_error(
        stack, stack.post("/v1/chat/completions", {**OK, "model": "nope/gpt-4o"}), 400, code="model_not_found"
    )
    assert "nope/gpt-4o" in body["error"]["message"]
    assert_error(stack, stack.post("/v1/chat/completions", {**OK, "model": "gpt-4o"}), 400)
    unknown = assert_error(stack, stack.post("/v1/chat/completions", {**OK, "model": "vllm/other-model"}), 404)
    assert "other-model" in unknown["error"]["message"]


def test_body_over_the_limit_is_413(stack: Stack) -> None:
    huge = {**OK, "messages": [{"role": "user", "content": "x" * 300_000}]}
    assert_error(stack, stack.post("/v1/chat/completions", huge), 413, code="payload_too_large")


def test_upstream_4xx_is_passed_through_with_its_message(stack: Stack) -> None:
    stack.upstream.fail_with(429, message="Rate limit reached for gpt-4o", retry_after=2)
    body = assert_error(stack, stack.post("/v1/chat/completions", OK), 429)
    assert "Rate limit reached" in body["error"]["message"]
    stack.upstream.reset()
    stack.upstream.fail_with(400, message="Invalid 'messages[0]': bad")
    assert (
        "Invalid 'messages[0]'" in assert_error(stack, stack.post("/v1/chat/completions", OK), 400)["error"]["message"]
    )


def test_upstream_5xx_is_502_and_timeout_is_504(stack: Stack) -> None:
    stack.upstream.fail_with(500, message="boom")
    assert assert_error(stack, stack.post("/v1/chat/completions", OK), 502)["error"]["upstream_status"] == 500
    stack.upstream.reset()
    slow = stack.post("/v1/chat/completions", {**OK, "model": "slowprov/slow-model"})
    assert_error(stack, slow, 504, code="upstream_timeout")
    refused = stack.post("/v1/chat/completions", {**OK, "model": "deadprov/gpt-4o"})
    assert_error(stack, refused, 502, code="upstream_unreachable")


def test_invalid_upstream_answer_is_502(stack: Stack) -> None:
    stack.upstream.set_mode("gpt-4o", "invalid_json")
    assert_error(stack, stack.post("/v1/chat/completions", OK), 502, code="upstream_bad_response")


def test_stream_cut_midway_ends_with_an_error_event(stack: Stack) -> None:
    stack.upstream.set_mode("gpt-4o", "cut_after", 2)
    response = stack.post("/v1/chat/completions", {**OK, "stream": True})
    assert response.status == 200
    events = [line[6:] for line in response.body.decode().split("\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    error = json.loads(events[-2])
    assert "error" in error and error["error"]["message"]
    client = openai.OpenAI(base_url=stack.gateway.url + "/v1", api_key=KEY, max_retries=0)
    with pytest.raises(openai.APIError):
        for _ in client.chat.completions.create(**OK, stream=True):
            pass
    assert stack.get("/health").status == 200


def test_a_stream_that_goes_quiet_mid_answer_ends_with_a_timeout_event(stack: Stack) -> None:
    stack.upstream.set_mode("quiet-model", "stall_after", 3)  # quiet after 3 chunks; slowprov allows 0.3 s in all
    started = time.monotonic()
    response = stack.post("/v1/chat/completions", {**OK, "model": "slowprov/quiet-model", "stream": True})
    assert response.status == 200 and time.monotonic() - started < 2.0
    events = [line[6:] for line in response.body.decode().split("\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    assert "slowprov did not finish in time (timeout 0.3s)" in json.loads(events[-2])["error"]["message"]
    assert "".join(json.loads(e)["choices"][0]["delta"].get("content") or "" for e in events[:3])  # content came
    assert stack.get("/health").status == 200


def test_wrong_method_and_path(stack: Stack) -> None:
    assert stack.get("/v1/chat/completions").status == 405
    assert stack.get("/nope").status == 404
