"""OpenTelemetry traces as a tracing backend meets them: an in-test OTLP/HTTP collector receives the gateway's
spans (protobuf), with the GenAI attributes, the client's `traceparent` as parent, one child per upstream attempt,
and the same ids as the call record; the upstream gets a `traceparent` of the same trace."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from portico.config.schema import TelemetryConfig
from portico.core.types import TraceInfo
from portico.observability.trace_context import otel_trace_id, parse_traceparent, traced, tracing_wanted
from tests.conftest import Stack
from tests.gateway_server import GatewayThread
from tests.storage.test_call_log_e2e import logged_settings, wait_for_record
from tests.upstreams.server import UpstreamState, UpstreamThread

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


class Collector:
    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.content_types: list[str] = []
        self.url = ""

    def install(self, app: web.Application, state: UpstreamState) -> None:
        async def traces(request: web.Request) -> web.Response:
            self.content_types.append(request.content_type)
            export = ExportTraceServiceRequest()
            export.ParseFromString(await request.read())
            for resource in export.resource_spans:
                for scope in resource.scope_spans:
                    self.spans.extend(scope.spans)
            return web.Response(body=b"", content_type="application/x-protobuf")

        app.router.add_post("/v1/traces", traces)

    def wait(self, trace_id: str, count: int, timeout: float = 10.0) -> list[Span]:
        deadline = time.monotonic() + timeout
        while True:
            found = [s for s in self.spans if s.trace_id.hex() == trace_id]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.02)


@pytest.fixture(scope="module")
def collector() -> Iterator[Collector]:
    sink = Collector()
    with UpstreamThread([sink.install]) as server:  # a bare aiohttp server on loopback
        sink.url = f"{server.url}/v1/traces"
        yield sink


@pytest.fixture(scope="module")
def _traced_gateway(
    upstream_thread: UpstreamThread, collector: Collector, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayThread]:
    url = f"sqlite:///{tmp_path_factory.mktemp('traces') / 'portico.db'}"
    telemetry = {"endpoint": collector.url, "export_delay_ms": 20, "service_name": "portico-test"}
    with GatewayThread(logged_settings(upstream_thread.url, url, telemetry=telemetry)) as gateway:
        yield gateway


@pytest.fixture
def traced_stack(_traced_gateway: GatewayThread, upstream_thread: UpstreamThread) -> Iterator[Stack]:
    upstream_thread.state.reset()
    yield Stack(_traced_gateway, upstream_thread)
    upstream_thread.state.reset()


def attributes(span: Span) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in span.attributes:
        value = kv.value
        out[kv.key] = getattr(value, value.WhichOneof("value"))
    return out


def test_a_fallback_is_one_request_span_under_the_callers_span_with_a_child_per_attempt(
    traced_stack: Stack, collector: Collector
) -> None:
    traced_stack.upstream.fail_with(500, "primary down", model="primary")
    body = {"model": "openai/primary", "messages": [{"role": "user", "content": "trace me"}]}
    response = traced_stack.post(
        "/v2/router/chat/completions",
        {**body, "fallbacks": [{"model": "openai/backup"}]},
        headers={"traceparent": f"00-{TRACE_ID}-{CLIENT_SPAN}-01"},
    )
    assert response.status == 200
    spans = collector.wait(TRACE_ID, 3)
    server = [s for s in spans if s.kind == Span.SPAN_KIND_SERVER]
    clients = sorted((s for s in spans if s.kind == Span.SPAN_KIND_CLIENT), key=lambda s: s.start_time_unix_nano)
    assert len(server) == 1 and len(clients) == 2, spans
    request_span = server[0]
    assert request_span.parent_span_id.hex() == CLIENT_SPAN
    got = attributes(request_span)
    assert got["gen_ai.operation.name"] == "chat" and got["gen_ai.provider.name"] == "openai"
    assert got["gen_ai.request.model"] == "openai/primary" and got["gen_ai.response.model"] == "backup"
    assert got["gen_ai.usage.input_tokens"] > 0 and got["gen_ai.usage.output_tokens"] > 0
    assert got["portico.attempts"] == 2 and got["http.response.status_code"] == 200
    assert request_span.end_time_unix_nano > request_span.start_time_unix_nano
    first, second = (attributes(s) for s in clients)
    assert all(s.parent_span_id == request_span.span_id for s in clients)
    assert (first["gen_ai.request.model"], first["http.response.status_code"], first["portico.attempt.index"]) == (
        "primary",
        500,
        0,
    )
    assert clients[0].status.code == clients[0].status.STATUS_CODE_ERROR
    assert second["portico.attempt.reason"] == "fallback" and second["portico.attempt.index"] == 1
    assert "primary down" in second["portico.fallback_reason"]
    record = wait_for_record(traced_stack, response.headers["x-request-id"])
    assert record["trace_id"] == TRACE_ID and record["span_id"] == request_span.span_id.hex()
    assert record["parent_span_id"] == CLIENT_SPAN
    sent = [r["headers"].get("traceparent") or r["headers"].get("Traceparent") for r in traced_stack.upstream.requests]
    assert sent and all(h == f"00-{TRACE_ID}-{request_span.span_id.hex()}-01" for h in sent)
    assert collector.content_types[-1] == "application/x-protobuf"


def test_portkey_trace_ids_map_onto_one_trace(traced_stack: Stack, collector: Collector) -> None:
    portkey_trace = f"checkout-{uuid.uuid4().hex[:8]}"  # not a W3C id: hashed to one
    for _ in range(2):
        response = traced_stack.post(
            "/v1/chat/completions",
            {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
            headers={"x-portkey-trace-id": portkey_trace, "x-portkey-provider": "openai"},
        )
        assert response.status == 200 and response.headers["x-portkey-trace-id"] == portkey_trace
    spans = collector.wait(str(otel_trace_id(portkey_trace)), 4)
    requests = [s for s in spans if s.kind == Span.SPAN_KIND_SERVER]
    assert len(requests) == 2 and all(attributes(s)["portkey.trace_id"] == portkey_trace for s in requests)
    record = wait_for_record(traced_stack, response.headers["x-request-id"])
    assert record["trace_id"] == portkey_trace and record["span_id"] in {s.span_id.hex() for s in requests}


def test_a_stream_and_a_cache_hit_are_traced(traced_stack: Stack, collector: Collector) -> None:
    trace_id = uuid.uuid4().hex
    body = {
        "model": "openai/gpt-4o",
        "messages": [{"role": "user", "content": f"cache {trace_id}"}],
        "cache": {"type": "exact_match", "ttl": 60},
    }
    headers = {"traceparent": f"00-{trace_id}-{CLIENT_SPAN}-01"}
    traced_stack.post("/v2/router/chat/completions", {**body, "stream": True}, headers=headers)
    traced_stack.post("/v2/router/chat/completions", body, headers=headers)
    spans = [s for s in collector.wait(trace_id, 3) if s.kind == Span.SPAN_KIND_SERVER]
    statuses = sorted(attributes(s)["portico.cache_status"] for s in spans)
    assert statuses == ["HIT", "MISS"]
    assert [attributes(s)["portico.stream"] for s in spans].count(True) == 1


def test_traceparent_parsing_and_when_tracing_is_on() -> None:
    assert parse_traceparent(f"00-{TRACE_ID}-{CLIENT_SPAN}-01".encode()) == (TRACE_ID, CLIENT_SPAN, True)
    for bad in (b"00-xyz-00f067aa0ba902b7-01", f"ff-{TRACE_ID}-{CLIENT_SPAN}-01".encode(), b"garbage"):
        assert parse_traceparent(bad) is None
    assert parse_traceparent(f"00-{'0' * 32}-{CLIENT_SPAN}-01".encode()) is None
    fresh = traced(TraceInfo(), None)
    assert fresh.trace_id is not None and len(fresh.trace_id) == 32 and fresh.span_id and len(fresh.span_id) == 16
    assert fresh.parent_span_id is None
    assert not tracing_wanted(TelemetryConfig(), {})
    assert tracing_wanted(TelemetryConfig(), {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert not tracing_wanted(TelemetryConfig(endpoint="http://x"), {"OTEL_SDK_DISABLED": "true"})
    assert not tracing_wanted(TelemetryConfig(enabled=False), {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"})


def test_tracing_off_loads_no_opentelemetry_module() -> None:
    script = (
        "import sys\n"
        "from portico.app import create_app\n"
        "from portico.config.schema import Settings\n"
        "app = create_app(Settings.model_validate({'storage': {'url': 'sqlite:///:memory:'}}))\n"
        "assert app.tracing is None and app.chat.tracing is False\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    command = [sys.executable, "-c", script]
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_guardrail_verdicts_are_on_the_request_span(traced_stack: Stack, collector: Collector) -> None:
    trace_id = uuid.uuid4().hex
    guards = [
        {"id": "orq_harmful_moderation", "execute_on": "input"},
        {"id": "orq_pii_detection", "execute_on": "input"},
    ]
    body = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "card 4111 1111 1111 1111"}]}
    headers = {"traceparent": f"00-{trace_id}-{CLIENT_SPAN}-01"}
    answer = traced_stack.post("/v2/router/chat/completions", {**body, "guardrails": guards}, headers=headers)
    assert answer.status == 400
    [span] = [s for s in collector.wait(trace_id, 1) if s.kind == Span.SPAN_KIND_SERVER]
    listed = [v.string_value for v in attributes(span)["portico.guardrails"].values]
    assert listed == ["orq_harmful_moderation:input:pass", "orq_pii_detection:input:fail"]


def test_a_span_name_from_orq_or_portkey_names_the_request_span_and_is_recorded(
    traced_stack: Stack, collector: Collector
) -> None:
    body = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "named"}]}
    cases = [
        ("/v2/router/chat/completions", {**body, "name": "checkout-summary"}, {}, "checkout-summary"),
        ("/v2/router/chat/completions", {**body, "orq": {"name": "orq-named"}}, {}, "orq-named"),
        ("/v1/chat/completions", body, {"x-portkey-provider": "openai", "x-portkey-span-name": "pk-span"}, "pk-span"),
        ("/v1/chat/completions", body, {}, "chat openai/gpt-4o"),  # none given: the operation and model
    ]
    for path, sent, headers, name in cases:
        trace_id = uuid.uuid4().hex
        answer = traced_stack.post(path, sent, headers={**headers, "traceparent": f"00-{trace_id}-{CLIENT_SPAN}-01"})
        assert answer.status == 200, answer.body
        server = [s for s in collector.wait(trace_id, 2) if s.kind == Span.SPAN_KIND_SERVER]
        assert [s.name for s in server] == [name]
        record = wait_for_record(traced_stack, answer.headers["x-request-id"])
        assert record["metadata"].get("span_name") == (None if name.startswith("chat ") else name)
