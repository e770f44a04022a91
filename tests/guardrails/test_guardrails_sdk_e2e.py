"""Issue 21: guardrails proven through HTTP with the real `orq-ai-sdk` and `portkey-ai` clients against the mock
upstream. PII redaction sends placeholders upstream and gives the client its own values back (JSON and the orq SDK's
own stream, against an upstream that echoes the text in 3-character pieces so placeholders arrive split); an output
guardrail refuses a bad answer as an orq API error (400, `guardrail_violation`); a Portkey `portkey.pii` input hook
that denies is 446 and one that does not deny is 246 with `hook_results`; and no stored call record, even with
`x-portico-log-bodies: full`, holds a redacted value."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from orq_ai_sdk import Orq, models
from portkey_ai import Portkey

from tests.conftest import KEY, Stack, http, stack_settings
from tests.gateway_server import GatewayThread
from tests.guardrails.test_answers_e2e import Verbatim, _install_verbatim
from tests.upstreams.server import UpstreamThread

EMAIL, IBAN, PHONE = "pieter.bakker@example.nl", "NL91ABNA0417164300", "+31 6 12345678"
REDACT = [{"id": "portico_pii_redaction", "execute_on": "input"}]
FULL_BODIES = {"x-portico-log-bodies": "full"}


@pytest.fixture(scope="module")
def verbatim() -> Iterator[Verbatim]:
    with (
        UpstreamThread([_install_verbatim]) as up,
        GatewayThread(stack_settings(up.url, logging={"request_log": True})) as gateway,
    ):
        yield Verbatim(gateway, up)


class Seen:
    """The status and headers of every response a client's `httpx` transport received."""

    def __init__(self) -> None:
        self.responses: list[httpx.Response] = []
        self.clients: list[httpx.Client] = []

    def __enter__(self) -> Seen:
        return self

    def __exit__(self, *_: object) -> None:
        for client in self.clients:  # a client handed to an SDK is not closed by it
            client.close()

    def hook(self, response: httpx.Response) -> None:
        self.responses.append(response)

    def client(self) -> httpx.Client:
        client = httpx.Client(follow_redirects=True, event_hooks={"response": [self.hook]})
        self.clients.append(client)
        return client

    @property
    def last(self) -> httpx.Response:
        assert self.responses, "no response was received"
        return self.responses[-1]


def _orq(url: str, seen: Seen) -> Orq:
    return Orq(api_key=KEY, server_url=url, client=seen.client())


def _sent(verbatim: Verbatim) -> str:
    content: str = verbatim.upstream.state.requests[-1]["body"]["messages"][0]["content"]
    return content


@pytest.mark.parametrize("stream", [False, True], ids=["json", "orq-sdk-stream"])
def test_orq_sdk_redaction_round_trip_and_the_call_record_holds_no_redacted_value(
    verbatim: Verbatim, stream: bool
) -> None:
    verbatim.upstream.state.requests.clear()
    text = f"Mail {EMAIL}, call {PHONE}, pay {IBAN}; again {EMAIL}."
    with Seen() as seen, _orq(verbatim.gateway.url, seen) as orq:
        asked: Any = orq.router.chat.completions.create(
            model="openai/gpt-4o",
            messages=[{"role": "user", "content": text}],
            guardrails=REDACT,
            stream=stream,
            http_headers=FULL_BODIES,
        )
        if stream:
            chunks = list(asked)
            got = "".join(c.data.choices[0].delta.content or "" for c in chunks if c.data and c.data.choices)
            assert len([c for c in chunks if c.data and c.data.choices]) > 5, "streamed in pieces, not one answer"
        else:
            got = asked.choices[0].message.content
    assert seen.last.status_code == 200
    assert seen.last.headers["content-type"].startswith("text/event-stream" if stream else "application/json")
    assert _sent(verbatim) == "Mail [EMAIL_1], call [PHONE_1], pay [IBAN_1]; again [EMAIL_1]."
    assert len(verbatim.upstream.state.requests) == 1
    assert got == text, "the client gets its own values back"
    record = verbatim.record(seen.last.headers["x-request-id"])
    assert record["request_body"] and record["response_body"], "the bodies were kept (x-portico-log-bodies: full)"
    assert "Mail [PII], call [PII], pay [PII]; again [PII]." in record["request_body"]
    kept = json.dumps(record)
    for value in (EMAIL, IBAN, PHONE, "12345678", "pieter.bakker"):
        assert value not in kept, f"{value!r} is in the stored call record"
    [verdict] = record["metadata"]["guardrails"]
    assert verdict["id"] == "portico_pii_redaction" and verdict["redacted"] == {"email": 1, "iban": 1, "phone": 1}


def test_no_listed_call_record_holds_a_redacted_value(verbatim: Verbatim) -> None:
    secret = "marieke.visser@example.org"
    with Seen() as seen, _orq(verbatim.gateway.url, seen) as orq:
        reply: Any = orq.router.chat.completions.create(
            model="openai/gpt-4o",
            messages=[{"role": "user", "content": f"forward it to {secret}"}],
            guardrails=REDACT,
            http_headers=FULL_BODIES,
        )
    assert reply.choices[0].message.content == f"forward it to {secret}"
    request_id = seen.last.headers["x-request-id"]
    record = verbatim.record(request_id)
    assert "forward it to [PII]" in record["request_body"] and "forward it to [PII]" in record["response_body"]
    listed = http("GET", f"{verbatim.gateway.url}/v1/logs", None, {"authorization": f"Bearer {KEY}"})
    assert listed.status == 200, listed.body
    assert request_id in listed.body.decode(), "the listing holds the call"
    assert secret not in listed.body.decode()


def _put_guardrail(url: str, name: str, spec: dict[str, Any]) -> None:
    headers = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
    assert http("PUT", f"{url}/v1/admin/guardrails/{name}", json.dumps(spec).encode(), headers).status == 200


@pytest.mark.parametrize(
    ("guardrail", "text", "stored"),
    [
        ("orq_harmful_moderation", "tell me about the bomb", None),
        ("no-refunds", "we offer a full REFUND today", {"checks": [{"kind": "regex_deny", "params": {"pattern": "REFUND"}}]}),
    ],
    ids=["builtin", "stored"],
)  # fmt: skip
def test_orq_sdk_output_guardrail_refusal_is_an_api_error_400_guardrail_violation(
    stack: Stack, guardrail: str, text: str, stored: dict[str, Any] | None
) -> None:
    if stored is not None:
        _put_guardrail(stack.gateway.url, guardrail, stored)
    with Seen() as seen, _orq(stack.gateway.url, seen) as orq, pytest.raises(models.APIErrorResponse) as refused:
        orq.router.chat.completions.create(
            model="openai/gpt-4o",
            messages=[{"role": "user", "content": text}],
            guardrails=[{"id": guardrail, "execute_on": "output"}],
        )
    error = refused.value
    assert error.status_code == 400
    assert error.data.error.type == "guardrail_violation" and error.data.error.code == guardrail
    assert json.loads(error.body)["error"]["type"] == "guardrail_violation"
    assert text not in error.body, "no piece of the refused answer reaches the client"
    assert len(stack.upstream.requests) == 1, "an output check: the model was asked"
    with Seen() as other, _orq(stack.gateway.url, other) as orq:  # the same guardrail lets a clean answer through
        clean: Any = orq.router.chat.completions.create(
            model="openai/gpt-4o",
            messages=[{"role": "user", "content": "a calm question"}],
            guardrails=[{"id": guardrail, "execute_on": "output"}],
        )
    assert clean.choices[0].message.content == "Echo from gpt-4o: a calm question"


def _portkey(stack: Stack, config: dict[str, Any], seen: Seen) -> Portkey:
    return Portkey(
        base_url=stack.gateway.url + "/v1",
        api_key=KEY,
        provider="openai",
        config=config,
        max_retries=0,
        http_client=seen.client(),
    )


def _pii_hook(deny: bool) -> dict[str, Any]:
    check = {"id": "portkey.pii", "parameters": {"entities": ["email", "iban"]}}
    return {"before_request_hooks": [{"id": "no-pii", "deny": deny, "checks": [check]}]}


def test_portkey_sdk_pii_input_hook_that_denies_is_446_with_no_upstream_call(stack: Stack) -> None:
    text = f"my iban is {IBAN}"
    with Seen() as seen, pytest.raises(Exception) as raised:
        _portkey(stack, _pii_hook(deny=True), seen).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": text}]
        )
    assert getattr(raised.value, "status_code", None) == 446
    assert seen.last.status_code == 446
    body = json.loads(seen.last.content)
    assert body["error"]["type"] == "hooks_failed"
    [hook] = body["hook_results"]["before_request_hooks"]
    assert hook["id"] == "no-pii" and hook["verdict"] is False and hook["deny"] is True
    assert [(c["id"], c["verdict"]) for c in hook["checks"]] == [("portkey.pii", False)]
    assert IBAN not in json.dumps(body), "the refusal does not echo the personal data"
    assert stack.upstream.requests == []
    with Seen() as clean:
        allowed: Any = _portkey(stack, _pii_hook(deny=True), clean).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "nothing personal"}]
        )
    assert clean.last.status_code == 200
    assert allowed.choices is not None and allowed.choices[0].message.content == "Echo from gpt-4o: nothing personal"


def test_portkey_sdk_pii_input_hook_that_does_not_deny_is_246_with_hook_results(stack: Stack) -> None:
    text = f"write to {EMAIL}"
    with Seen() as seen:
        reply: Any = _portkey(stack, _pii_hook(deny=False), seen).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": text}]
        )
    assert seen.last.status_code == 246
    assert reply.choices is not None and reply.choices[0].message.content == f"Echo from gpt-4o: {text}"
    extra = reply.model_extra or {}
    [hook] = extra["hook_results"]["before_request_hooks"]
    assert hook["id"] == "no-pii" and hook["verdict"] is False and hook["deny"] is False
    assert [(c["id"], c["verdict"]) for c in hook["checks"]] == [("portkey.pii", False)]
    assert len(stack.upstream.requests) == 1, "not denied: the model was asked"
    with Seen() as passed:
        _portkey(stack, _pii_hook(deny=False), passed).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "nothing personal"}]
        )
    assert passed.last.status_code == 200, "a clean input passes the same hook"
