"""Portkey configs whose guardrail hooks could never run are refused when they are loaded or written, not per
request: `portico check-config` and `serve` (real subprocesses) for static `portkey.configs`, and
`PUT /v1/admin/configs/{id}` for stored ones (where a reference to a stored guardrail is checked against the store)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.config.test_check_config import run, write
from tests.conftest import KEY, Response, Stack, http
from tests.gateway_server import free_port

BAD_HOOKS: dict[str, tuple[str, str]] = {
    "unknown check": (
        "{before_request_hooks: [{id: h1, checks: [{id: acme.magic}]}]}",
        "x-portkey-config h1: unsupported check 'acme.magic'",
    ),
    "bad regex": (
        '{input_guardrails: [{"default.regexMatch": {rule: "("}}]}',
        "not a valid regular expression",
    ),
    "bad bounds": (
        "{after_request_hooks: [{id: short, checks: [{id: default.wordCount, parameters: {minWords: 9, maxWords: 2}}]}]}",
        "x-portkey-config short: length: 'max' is below 'min'",
    ),
    "typo of a built-in": (
        "{input_guardrails: [orq_pii_detecton]}",
        "x-portkey-config input_guardrails[0]: unknown guardrail 'orq_pii_detecton'",
    ),
    "hooks not a list": ("{output_guardrails: {id: x}}", "x-portkey-config output_guardrails: must be a list"),
}


@pytest.mark.parametrize("case", sorted(BAD_HOOKS))
def test_check_config_and_serve_refuse_a_static_config_with_bad_hooks(tmp_path: Path, case: str) -> None:
    hooks, expected = BAD_HOOKS[case]
    config = write(tmp_path, f"portkey: {{configs: {{guarded: {hooks}}}}}\n")
    checked = run("check-config", config)
    assert checked.returncode == 1, checked.stderr
    line = next((x.strip() for x in checked.stderr.splitlines() if expected in x), None)
    assert line is not None and line.startswith("portkey.configs.guarded: "), checked.stderr
    env = {**os.environ, "PORTICO_HOME": str(tmp_path)}
    served = run("serve", "--config", config, "--port", str(free_port()), env=env)
    assert served.returncode == 2
    assert served.stderr.splitlines() == [f"config error: {line}"]


def test_good_hooks_and_ids_only_the_store_can_vouch_for_pass_the_static_check(tmp_path: Path) -> None:
    hooks = (
        '{input_guardrails: [orq_pii_detection, house-rules, {"default.contains": {words: [a]}, deny: true}], '
        "after_request_hooks: [{id: j, checks: [{id: default.jsonSchema, parameters: {schema: {type: object}}}]}]}"
    )
    checked = run("check-config", write(tmp_path, f"portkey: {{configs: {{guarded: {hooks}}}}}\n"))
    assert checked.returncode == 0, checked.stderr


def _put_config(stack: Stack, config_id: str, body: dict[str, Any]) -> Response:
    headers = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
    return http("PUT", f"{stack.gateway.url}/v1/admin/configs/{config_id}", json.dumps(body).encode(), headers)


def test_the_admin_api_refuses_a_config_with_bad_hooks_and_checks_references_against_the_store(stack: Stack) -> None:
    bad = _put_config(stack, "pc-bad-hooks", {"input_guardrails": [{"default.regexMatch": {"rule": "("}}]})
    assert bad.status == 422, bad.body
    assert "not a valid regular expression" in bad.json()["error"]["message"]
    assert stack.get("/v1/admin/configs/pc-bad-hooks").status == 404
    unknown = _put_config(stack, "pc-unknown", {"output_guardrails": ["not-stored-yet"]})
    assert unknown.status == 422, unknown.body
    assert "output_guardrails[0]: unknown guardrail 'not-stored-yet'" in unknown.json()["error"]["message"]
    headers = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
    spec = json.dumps({"checks": [{"kind": "length", "params": {"max": 500}}]}).encode()
    url = f"{stack.gateway.url}/v1/admin/guardrails/not-stored-yet"
    assert http("PUT", url, spec, headers).status == 200
    stored = _put_config(stack, "pc-unknown", {"output_guardrails": ["not-stored-yet"]})
    assert stored.status == 200, stored.body
    sent = {"x-portkey-config": "pc-unknown", "x-portkey-provider": "openai"}
    answer = stack.post("/v1/chat/completions", {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
                        headers=sent)  # fmt: skip
    assert answer.status == 200, answer.body
    assert answer.json()["hook_results"]["after_request_hooks"][0]["id"] == "not-stored-yet"
