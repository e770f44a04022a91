"""Request and response bodies in the call log as operators meet them: none by default, `logging.bodies` and
`body_max_bytes` in the config, the `x-portico-log-bodies` header both ways, a bad header refused with a JSON 400,
a stream's SSE text, and no PII input value or key in any stored body, log line or span."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from portico.config.load import ConfigError, load_settings
from portico.config_check import validate_config
from tests.conftest import KEY, Stack
from tests.deployments.conftest import create, new_key, simple
from tests.gateway_server import GatewayThread
from tests.observability.test_tracing_e2e import Collector, attributes
from tests.storage.test_call_log_e2e import logged_settings, wait_for_record
from tests.upstreams.server import UpstreamThread

ROUTER = "/v2/router/chat/completions"
GROQ_KEY = "gsk_live_9f8e7d6c5b4a3921"
"""A provider key that no pattern recognises (not `sk-...`): masked because it is configured."""
CUT = 300


def _settings(upstream_url: str, storage_url: str, **logging: Any) -> dict[str, Any]:
    settings = logged_settings(upstream_url, storage_url)
    settings["logging"] = {**settings["logging"], **logging}
    groq = {"type": "openai", "api_key": GROQ_KEY, "base_url": f"{upstream_url}/v1"}
    settings["providers"] = {**settings["providers"], "groq": groq}
    return settings


@pytest.fixture(scope="module")
def _plain_gateway(
    upstream_thread: UpstreamThread, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayThread]:
    url = f"sqlite:///{tmp_path_factory.mktemp('bodies-none') / 'portico.db'}"
    with GatewayThread(_settings(upstream_thread.url, url)) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def _cutting_gateway(
    upstream_thread: UpstreamThread, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayThread]:
    url = f"sqlite:///{tmp_path_factory.mktemp('bodies-cut') / 'portico.db'}"
    with GatewayThread(_settings(upstream_thread.url, url, bodies="truncated", body_max_bytes=CUT)) as gateway:
        yield gateway


@pytest.fixture
def plain(_plain_gateway: GatewayThread, upstream_thread: UpstreamThread) -> Iterator[Stack]:
    upstream_thread.state.reset()
    yield Stack(_plain_gateway, upstream_thread)


@pytest.fixture
def cutting(_cutting_gateway: GatewayThread, upstream_thread: UpstreamThread) -> Iterator[Stack]:
    upstream_thread.state.reset()
    yield Stack(_cutting_gateway, upstream_thread)


def client(stack: Stack, mode: str | None = None) -> openai.OpenAI:
    headers = {"x-portico-log-bodies": mode} if mode is not None else None
    return openai.OpenAI(base_url=stack.gateway.url + "/v1", api_key=KEY, max_retries=0, default_headers=headers)


def ask(text: str = "") -> list[Any]:
    return [{"role": "user", "content": f"{text}tell me about bodies {uuid.uuid4().hex}"}]


def chat(stack: Stack, mode: str | None = None, content: str = "", **extra: Any) -> tuple[Any, dict[str, Any]]:
    raw = client(stack, mode).chat.completions.with_raw_response.create(
        model="openai/gpt-4o", messages=ask(content), **extra
    )
    return raw.parse(), wait_for_record(stack, raw.headers["x-request-id"])


def test_by_default_no_body_is_kept(plain: Stack) -> None:
    completion, record = chat(plain)
    assert completion.choices[0].message.content
    assert "request_body" not in record and "response_body" not in record
    listed = plain.get("/v1/logs?limit=5").json()["data"]
    assert listed and all("request_body" not in r and "response_body" not in r for r in listed)


def test_a_request_asks_for_its_bodies_in_full(plain: Stack) -> None:
    completion, record = chat(plain, "full", "x" * 2000)
    request = json.loads(record["request_body"])
    assert request["model"] == "openai/gpt-4o" and request["messages"][0]["content"].startswith("x" * 2000)
    assert (
        json.loads(record["response_body"])["choices"][0]["message"]["content"] == completion.choices[0].message.content
    )


def test_truncated_keeps_body_max_bytes_and_marks_the_rest(cutting: Stack) -> None:
    _, record = chat(cutting, content="y" * 1000)
    request, response = record["request_body"], record["response_body"]
    kept, _, marker = request.partition("…[")
    assert len(kept.encode()) == CUT and kept.startswith("{") and '"model":"openai/gpt-4o"' in kept
    assert marker.endswith(" more bytes not kept]") and int(marker.split()[0]) > 1000 - CUT
    assert response.startswith('{"id"') and "more bytes not kept" in response


def test_the_header_overrides_the_gateway_both_ways(cutting: Stack) -> None:
    _, none = chat(cutting, "none", "z" * 1000)
    assert "request_body" not in none and "response_body" not in none
    _, full = chat(cutting, "FULL", "z" * 1000)
    assert "not kept" not in full["request_body"] and "z" * 1000 in full["request_body"]


def test_a_bad_header_is_refused_with_a_json_400_and_still_recorded(plain: Stack) -> None:
    request_id = f"bodies-{uuid.uuid4().hex[:12]}"
    body = {"model": "openai/gpt-4o", "messages": ask()}
    answer = plain.post(
        "/v1/chat/completions", body, headers={"x-portico-log-bodies": "yes", "x-request-id": request_id}
    )
    assert answer.status == 400
    error = answer.json()["error"]
    assert error["code"] == "invalid_header" and error["param"] == "x-portico-log-bodies"
    assert "none, truncated, full" in error["message"]
    assert plain.upstream.requests == [], "nothing was sent upstream"
    record = wait_for_record(plain, request_id)
    assert record["status"] == 400 and record["error_type"] == "invalid_request_error"
    assert "request_body" not in record
    with pytest.raises(openai.BadRequestError):  # and the SDK sees an ordinary API error
        client(plain, "all").chat.completions.create(model="openai/gpt-4o", messages=ask())


def test_a_stream_keeps_the_sse_text_the_client_got(cutting: Stack) -> None:
    with client(cutting, "full").chat.completions.with_streaming_response.create(
        model="openai/gpt-4o", messages=ask(), stream=True
    ) as response:
        text = "".join(chunk.choices[0].delta.content or "" for chunk in response.parse() if chunk.choices)
        request_id = response.headers["x-request-id"]
    record = wait_for_record(cutting, request_id)
    body = record["response_body"]
    assert body.startswith("data: {") and body.endswith("data: [DONE]\n\n")
    frames = [json.loads(line[6:]) for line in body.split("\n\n") if line.startswith("data: {")]
    assert "".join(f["choices"][0]["delta"].get("content") or "" for f in frames if f["choices"]) == text
    assert json.loads(record["request_body"])["stream"] is True


def test_a_cut_stream_says_how_much_was_left_out(cutting: Stack) -> None:
    with client(cutting).chat.completions.with_streaming_response.create(
        model="openai/gpt-4o", messages=ask("w" * 500), stream=True
    ) as response:
        list(response.parse())
        request_id = response.headers["x-request-id"]
    body = wait_for_record(cutting, request_id)["response_body"]
    kept, _, marker = body.partition("…[")
    assert len(kept.encode()) == CUT and kept.startswith("data: {") and marker.endswith(" more bytes not kept]")


def test_an_is_pii_input_is_never_in_a_stored_body(plain: Stack) -> None:
    name = "Jane Q. Doe-Ångström"
    body = {
        "model": "openai/gpt-4o",
        "messages": [{"role": "user", "content": "hello {{name}} from {{city}}"}],
        "orq": {"inputs": [{"key": "name", "value": name, "is_pii": True}, {"key": "city", "value": "Delft"}]},
    }
    for raw in (json.dumps(body).encode(), json.dumps(body, ensure_ascii=False).encode()):
        answer = plain.post_raw(ROUTER, raw, headers={"x-portico-log-bodies": "full"})
        assert answer.status == 200, answer.body
        assert name in answer.json()["choices"][0]["message"]["content"], "the client and the model get the value"
        record = wait_for_record(plain, answer.headers["x-request-id"])
        assert name not in json.dumps(record, ensure_ascii=False) and name not in json.dumps(record)
        assert '"value": "[PII]"' in record["request_body"] and "Delft" in record["request_body"]
        assert "hello [PII] from Delft" in record["response_body"]


def test_an_is_pii_value_streamed_in_pieces_is_not_in_the_stored_stream(plain: Stack) -> None:
    """The mock streams word by word, so the name reaches the client over three frames: no frame holds it whole."""
    name = "Jane Q. Doe-Ångström"
    body = {
        "model": "openai/gpt-4o",
        "stream": True,
        "messages": [{"role": "user", "content": "hello {{name}} and {{key}}"}],
        "orq": {"inputs": [{"key": "name", "value": name, "is_pii": True}, {"key": "key", "value": GROQ_KEY}]},
    }
    answer = plain.post(ROUTER, body, headers={"x-portico-log-bodies": "full"})
    assert answer.status == 200, answer.body
    frames = [json.loads(f[6:]) for f in answer.body.decode().split("\n\n") if f.startswith("data: {")]
    pieces = [f["choices"][0]["delta"].get("content") or "" for f in frames if f.get("choices")]
    said = "".join(pieces)
    assert name in said and GROQ_KEY in said, "the client gets the values"
    assert not any(name in piece for piece in pieces), "the test needs the name split over frames"
    stored = wait_for_record(plain, answer.headers["x-request-id"])["response_body"]
    kept = [json.loads(f[6:]) for f in stored.split("\n\n") if f.startswith("data: {")]
    text = "".join(f["choices"][0]["delta"].get("content") or "" for f in kept if f.get("choices"))
    assert name not in text and "Doe-Ångström" not in text and GROQ_KEY not in text
    assert "hello [PII] and [REDACTED]" in text
    assert stored.endswith("data: [DONE]\n\n")


def test_keys_in_a_body_are_redacted(plain: Stack) -> None:
    pasted = f"my keys are {GROQ_KEY} and sk-upstream, also sk-proj-Zx81Qa0b9c7d6e5f. "
    completion, record = chat(plain, "full", pasted, extra_body={"metadata": {"api_key": "hunter2hunter2"}})
    assert GROQ_KEY in completion.choices[0].message.content, "the upstream echoed them: the client sees them"
    stored = record["request_body"] + record["response_body"]
    for secret in (GROQ_KEY, "sk-upstream", "Zx81Qa0b9c7d6e5f", "hunter2hunter2", KEY):
        assert secret not in stored
    assert stored.count("[REDACTED]") >= 6


def test_a_provider_key_the_request_brought_is_redacted(plain: Stack) -> None:
    """Portkey's bring-your-own-key: the provider key in `Authorization`, the gateway key in `x-portkey-api-key`."""
    byok = f"byok-{uuid.uuid4().hex}"  # shaped like no known key: only knowing it masks it
    portkey = openai.OpenAI(
        base_url=plain.gateway.url + "/v1",
        api_key=byok,
        max_retries=0,
        default_headers={"x-portkey-api-key": KEY, "x-portkey-provider": "openai", "x-portico-log-bodies": "full"},
    )
    raw = portkey.chat.completions.with_raw_response.create(model="gpt-4o", messages=ask(f"why does {byok} not work? "))
    sent = {name.lower(): value for name, value in plain.upstream.requests[-1]["headers"].items()}
    assert sent["authorization"] == f"Bearer {byok}", "the upstream got it"
    assert byok in raw.parse().choices[0].message.content
    record = wait_for_record(plain, raw.headers["x-request-id"])
    assert byok not in record["request_body"] and byok not in record["response_body"]
    assert "why does [REDACTED] not work?" in record["request_body"]


def test_a_deployment_keeps_its_bodies_too(cutting: Stack) -> None:
    key = new_key()
    create(cutting, simple(key))
    asked = {"key": key, "messages": [{"role": "user", "content": "deployed body"}]}
    served = cutting.post("/v2/deployments/invoke", asked, headers={"x-portico-log-bodies": "full"})
    assert served.status == 200, served.body
    record = wait_for_record(cutting, served.headers["x-request-id"])
    assert json.loads(record["request_body"]) == asked
    assert json.loads(record["response_body"]) == served.json()
    streamed = cutting.post("/v2/deployments/stream", asked, headers={"x-portico-log-bodies": "full"})
    assert streamed.status == 200
    assert wait_for_record(cutting, streamed.headers["x-request-id"])["response_body"] == streamed.body.decode()


@pytest.fixture(scope="module")
def collector() -> Iterator[Collector]:
    sink = Collector()
    with UpstreamThread([sink.install]) as server:
        sink.url = f"{server.url}/v1/traces"
        yield sink


@pytest.fixture(scope="module")
def traced(
    upstream_thread: UpstreamThread, collector: Collector, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    url = f"sqlite:///{tmp_path_factory.mktemp('bodies-traced') / 'portico.db'}"
    settings = _settings(upstream_thread.url, url, bodies="full")
    settings["telemetry"] = {"endpoint": collector.url, "export_delay_ms": 20, "service_name": "portico-test"}
    with GatewayThread(settings) as gateway:
        yield Stack(gateway, upstream_thread)


def test_bodies_never_reach_a_span(traced: Stack, collector: Collector) -> None:
    trace_id = uuid.uuid4().hex
    secret_text = f"a span must not carry this {uuid.uuid4().hex}"
    raw = client(traced).chat.completions.with_raw_response.create(
        model="openai/gpt-4o",
        messages=[{"role": "user", "content": secret_text}],
        extra_headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"},
    )
    record = wait_for_record(traced, raw.headers["x-request-id"])
    assert secret_text in record["request_body"] and secret_text in record["response_body"]
    spans = collector.wait(trace_id, 2)
    assert spans
    for span in spans:
        assert secret_text.encode() not in span.SerializeToString()
        assert not any("body" in name for name in attributes(span))


def test_the_config_is_checked(tmp_path: Any) -> None:
    path = tmp_path / "portico.yaml"
    path.write_text("logging:\n  bodies: truncated\n  body_max_bytes: 512\n")
    assert validate_config(path) == []
    settings = load_settings(path)
    assert (settings.logging.bodies, settings.logging.body_max_bytes) == ("truncated", 512)
    assert (load_settings(None).logging.bodies, load_settings(None).logging.body_max_bytes) == ("none", 16384)
    path.write_text("logging:\n  bodies: everything\n  body_max_bytes: 0\n  body_bytes: 5\n")
    problems = validate_config(path)
    assert any(p.startswith("logging.bodies") for p in problems)
    assert any(p.startswith("logging.body_max_bytes") for p in problems)
    assert any(p.startswith("logging.body_bytes") for p in problems), "unknown keys stay errors"
    with pytest.raises(ConfigError):
        load_settings(path)
