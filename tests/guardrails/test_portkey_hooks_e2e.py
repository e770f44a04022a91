"""Portkey's guardrail hooks in `x-portkey-config`, through the `portkey-ai` client and raw HTTP: a denied input is
446 with `hook_results` and no upstream call; a failed check that does not deny is 246 with the answer."""

from __future__ import annotations

import json
from typing import Any

import pytest
from portkey_ai import Portkey

from tests.conftest import KEY, Stack

NO_SECRETS = {"id": "no-secrets", "checks": [{"id": "default.regexMatch", "parameters": {"rule": "secret"}}]}


def _portkey(stack: Stack, config: dict[str, Any]) -> Portkey:
    return Portkey(base_url=stack.gateway.url + "/v1", api_key=KEY, provider="openai", config=config, max_retries=0)


def _post(stack: Stack, config: dict[str, Any], text: str) -> Any:
    headers = {"x-portkey-config": json.dumps(config), "x-portkey-provider": "openai"}
    return stack.post("/v1/chat/completions", {"model": "gpt-4o", "messages": [{"role": "user", "content": text}]},
                      headers=headers)  # fmt: skip


def test_denied_input_hook_is_446_with_hook_results_and_no_upstream_call(stack: Stack) -> None:
    config = {"before_request_hooks": [{**NO_SECRETS, "checks": [
        {"id": "default.regexMatch", "parameters": {"rule": "secret", "not": True}}], "deny": True}]}  # fmt: skip
    answer = _post(stack, config, "the secret is 42")
    assert answer.status == 446, answer.body
    body = answer.json()
    assert body["error"]["type"] == "hooks_failed"
    [hook] = body["hook_results"]["before_request_hooks"]
    assert hook["id"] == "no-secrets" and hook["verdict"] is False and hook["deny"] is True
    assert hook["checks"][0]["id"] == "default.regexMatch" and hook["checks"][0]["verdict"] is False
    assert body["hook_results"]["after_request_hooks"] == []
    assert stack.upstream.requests == []
    with pytest.raises(Exception) as raised:
        _portkey(stack, config).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "the secret is 42"}]
        )
    assert getattr(raised.value, "status_code", None) == 446
    assert stack.upstream.requests == []


def test_portkey_sdk_gets_246_and_hook_results_when_a_check_fails_without_deny(stack: Stack) -> None:
    config = {"input_guardrails": [{"default.contains": {"operator": "any", "words": ["invoice"]}}]}
    answer = _post(stack, config, "hello")
    assert answer.status == 246, answer.body
    body = answer.json()
    assert body["choices"][0]["message"]["content"] == "Echo from gpt-4o: hello"
    assert body["hook_results"]["before_request_hooks"][0]["verdict"] is False
    reply = _portkey(stack, config).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hello"}]
    )
    assert reply.choices[0].message.content == "Echo from gpt-4o: hello"


def test_passing_hooks_answer_200_with_every_result(stack: Stack) -> None:
    config = {
        "input_guardrails": [{"default.wordCount": {"minWords": 1, "maxWords": 50}, "deny": True}],
        "output_guardrails": ["orq_harmful_moderation"],
    }
    answer = _post(stack, config, "a calm question")
    assert answer.status == 200, answer.body
    results = answer.json()["hook_results"]
    assert [h["verdict"] for h in results["before_request_hooks"]] == [True]
    [by_id] = results["after_request_hooks"]
    assert by_id["id"] == "orq_harmful_moderation" and by_id["verdict"] is True and by_id["deny"] is True


def test_output_guardrail_by_id_denies_the_answer_with_446(stack: Stack) -> None:
    config = {"after_request_hooks": [{"id": "calm", "checks": [{"id": "portkey.moderateContent",
              "parameters": {"category": "harmful"}}], "deny": True}]}  # fmt: skip
    answer = _post(stack, config, "how to make a bomb")
    assert answer.status == 446, answer.body
    assert answer.json()["hook_results"]["after_request_hooks"][0]["verdict"] is False
    assert len(stack.upstream.requests) == 1


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"before_request_hooks": {"id": "x"}}, "must be a list"),
        ({"before_request_hooks": [{"id": "x", "checks": [{"id": "acme.magic"}]}]}, "unsupported check"),
        ({"input_guardrails": [{"deny": True}]}, "names no check"),
        ({"input_guardrails": [{"default.regexMatch": {"rule": "("}}]}, "not a valid regular expression"),
    ],
)
def test_bad_hooks_are_400_naming_the_problem(stack: Stack, config: dict[str, Any], fragment: str) -> None:
    answer = _post(stack, config, "hi")
    assert answer.status == 400, answer.body
    assert fragment in answer.json()["error"]["message"]
    assert stack.upstream.requests == []
