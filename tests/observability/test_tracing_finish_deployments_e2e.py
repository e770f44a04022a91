"""Spans an operator reads in a tracing backend, beyond the router basics (`test_tracing_e2e.py`): the chat span's
`gen_ai.response.finish_reasons` for JSON answers and streams, and deployment calls traced like router calls —
the caller's `traceparent` honoured, one sent upstream under the gateway's span, and the deployment's key,
version and variant on the span."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.conftest import KEY, Stack
from tests.deployments.conftest import create, new_key, simple
from tests.gateway_server import GatewayThread
from tests.observability.test_tracing_e2e import Collector, attributes
from tests.storage.test_call_log_e2e import logged_settings, wait_for_record
from tests.upstreams.server import UpstreamThread

CLIENT_SPAN = "00f067aa0ba902b7"


@pytest.fixture(scope="module")
def sink() -> Iterator[Collector]:
    collector = Collector()
    with UpstreamThread([collector.install]) as server:
        collector.url = f"{server.url}/v1/traces"
        yield collector


@pytest.fixture(scope="module")
def _gateway(
    upstream_thread: UpstreamThread, sink: Collector, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayThread]:
    url = f"sqlite:///{tmp_path_factory.mktemp('finish') / 'portico.db'}"
    telemetry = {"endpoint": sink.url, "export_delay_ms": 20}
    with GatewayThread(logged_settings(upstream_thread.url, url, telemetry=telemetry)) as gateway:
        yield gateway


@pytest.fixture
def traced(_gateway: GatewayThread, upstream_thread: UpstreamThread) -> Iterator[Stack]:
    upstream_thread.state.reset()
    yield Stack(_gateway, upstream_thread)
    upstream_thread.state.reset()


def traceparent() -> tuple[str, dict[str, str]]:
    trace_id = uuid.uuid4().hex
    return trace_id, {"traceparent": f"00-{trace_id}-{CLIENT_SPAN}-01"}


def request_span(sink: Collector, trace_id: str) -> Span:
    [span] = [s for s in sink.wait(trace_id, 2) if s.kind == Span.SPAN_KIND_SERVER]
    return span


def finish_reasons(span: Span) -> list[str]:
    return [v.string_value for v in attributes(span)["gen_ai.response.finish_reasons"].values]


def test_a_json_answer_span_lists_each_choices_finish_reason(traced: Stack, sink: Collector) -> None:
    trace_id, headers = traceparent()
    client = openai.OpenAI(base_url=traced.gateway.url + "/v1", api_key=KEY, max_retries=0)
    completion = client.chat.completions.create(
        model="openai/gpt-4o", messages=[{"role": "user", "content": "two please"}], n=2, extra_headers=headers
    )
    assert [c.finish_reason for c in completion.choices] == ["stop", "stop"]
    assert finish_reasons(request_span(sink, trace_id)) == ["stop", "stop"]


def test_a_stream_span_has_the_finish_reason_the_client_saw(traced: Stack, sink: Collector) -> None:
    trace_id, headers = traceparent()
    client = openai.OpenAI(base_url=traced.gateway.url + "/v1", api_key=KEY, max_retries=0)
    tool: Any = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}
    stream = client.chat.completions.create(
        model="openai/gpt-4o",
        messages=[{"role": "user", "content": "call the tool"}],
        tools=[tool],
        stream=True,
        extra_headers=headers,
    )
    seen = [c.finish_reason for chunk in stream for c in chunk.choices if c.finish_reason]
    assert seen == ["tool_calls"]
    span = request_span(sink, trace_id)
    assert attributes(span)["portico.stream"] is True and finish_reasons(span) == seen


@pytest.mark.parametrize("path", ["/v2/deployments/invoke", "/v2/deployments/stream"])
def test_a_deployment_call_is_traced_like_a_router_call(traced: Stack, sink: Collector, path: str) -> None:
    key = new_key("traced")
    create(traced, simple(key))
    trace_id, headers = traceparent()
    answer = traced.post(path, {"key": key, "messages": [{"role": "user", "content": "hi"}]}, headers=headers)
    assert answer.status == 200, answer.body
    span = request_span(sink, trace_id)
    assert span.parent_span_id.hex() == CLIENT_SPAN
    got = attributes(span)
    assert (got["portico.deployment.key"], got["portico.deployment.version"]) == (key, 1)
    assert got["portico.deployment.variant"] and got["gen_ai.request.model"] == "openai/gpt-4o"
    assert finish_reasons(span) == ["stop"]
    [client_span] = [s for s in sink.wait(trace_id, 2) if s.kind == Span.SPAN_KIND_CLIENT]
    assert client_span.parent_span_id == span.span_id
    [upstream] = traced.upstream.requests
    sent = upstream["headers"].get("traceparent") or upstream["headers"].get("Traceparent")
    assert sent == f"00-{trace_id}-{span.span_id.hex()}-01"
    record = wait_for_record(traced, answer.headers["x-request-id"])
    assert (record["trace_id"], record["span_id"], record["parent_span_id"]) == (
        trace_id,
        span.span_id.hex(),
        CLIENT_SPAN,
    )


def test_a_deployment_without_traceparent_starts_its_own_trace(traced: Stack, sink: Collector) -> None:
    key = new_key("untraced")
    create(traced, simple(key))
    answer = traced.post("/v2/deployments/invoke", {"key": key, "messages": [{"role": "user", "content": "hi"}]})
    assert answer.status == 200
    record = wait_for_record(traced, answer.headers["x-request-id"])
    assert record["parent_span_id"] is None
    span = request_span(sink, record["trace_id"])
    assert span.span_id.hex() == record["span_id"] and not span.parent_span_id
    [upstream] = traced.upstream.requests
    assert upstream["headers"].get("traceparent") == f"00-{record['trace_id']}-{record['span_id']}-01"
