"""Every chat call lands in the call log: over HTTP with the real `openai` SDK, read back through /v1/logs."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import openai
import pytest

from portico.core.records import CallRecord
from portico.storage.db import Database
from portico.storage.repos import RequestLogRepo
from tests.conftest import KEY, Response, Stack, stack_settings
from tests.gateway_server import GatewayThread
from tests.upstreams.server import UpstreamThread

MESSAGES: list[Any] = [{"role": "user", "content": "Say hi to the log"}]


def logged_settings(upstream_url: str, storage_url: str, **overrides: Any) -> dict[str, Any]:
    return stack_settings(
        upstream_url, storage={"url": storage_url}, logging={"request_log": True, "queue_size": 1000}, **overrides
    )


@pytest.fixture(scope="module")
def _logged_gateway(
    upstream_thread: UpstreamThread, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayThread]:
    url = f"sqlite:///{tmp_path_factory.mktemp('calllog') / 'portico.db'}"
    with GatewayThread(logged_settings(upstream_thread.url, url)) as gateway:
        yield gateway


@pytest.fixture
def logged(_logged_gateway: GatewayThread, upstream_thread: UpstreamThread) -> Iterator[Stack]:
    upstream_thread.state.reset()
    yield Stack(_logged_gateway, upstream_thread)
    upstream_thread.state.reset()


def wait_for_record(stack: Stack, request_id: str, timeout: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = stack.get(f"/v1/logs/{request_id}")
        if response.status == 200:
            record: dict[str, Any] = response.json()
            return record
        assert response.status == 404, response.body
        assert time.monotonic() < deadline, f"no call record for {request_id}"
        time.sleep(0.02)


def new_id() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


def test_a_completion_is_recorded_with_provider_model_tokens_trace_and_metadata(logged: Stack) -> None:
    client = openai.OpenAI(base_url=logged.gateway.url + "/v1", api_key=KEY, max_retries=0)
    request_id, trace_id = new_id(), new_id()
    completion = client.chat.completions.create(
        model="openai/gpt-4o",
        messages=MESSAGES,
        extra_headers={"x-request-id": request_id, "x-portkey-trace-id": trace_id, "x-portkey-span-id": "span-1"},
        extra_body={"metadata": {"team": "search"}, "identity": {"id": "user-42"}, "thread": {"id": "thread-7"}},
    )
    record = wait_for_record(logged, request_id)
    assert completion.usage is not None
    assert record["provider"] == "openai" and record["model"] == "gpt-4o"
    assert record["requested_model"] == "openai/gpt-4o"
    assert record["status"] == 200 and record["error_type"] is None
    assert record["prompt_tokens"] == completion.usage.prompt_tokens
    assert record["completion_tokens"] == completion.usage.completion_tokens
    assert record["total_tokens"] == completion.usage.total_tokens
    assert record["trace_id"] == trace_id and record["span_id"] == "span-1"
    assert record["path"] == "/v1/chat/completions" and record["dialect"] == "portkey"
    assert record["stream"] is False and record["ttft_ms"] is None
    priced = (completion.usage.prompt_tokens * 2.5 + completion.usage.completion_tokens * 10) / 1e6  # gpt-4o
    assert record["cost_usd"] == pytest.approx(priced)
    assert record["latency_ms"] > 0 and 0 <= record["overhead_ms"] <= record["latency_ms"]
    assert [(a["provider"], a["status"]) for a in record["attempts"]] == [("openai", 200)]
    assert record["metadata"] == {"team": "search"}
    assert record["identity_id"] == "user-42" and record["thread_id"] == "thread-7"
    assert record["client_key_hash"] == hashlib.sha256(KEY.encode()).hexdigest()[:16]
    assert KEY not in logged.get(f"/v1/logs/{request_id}").body.decode()


async def test_a_stream_is_recorded_with_its_usage_and_time_to_first_token(logged: Stack) -> None:
    client = openai.AsyncOpenAI(base_url=logged.gateway.url + "/v2/router", api_key=KEY, max_retries=0)
    request_id = new_id()
    stream = await client.chat.completions.create(
        model="openai/gpt-4o",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"x-request-id": request_id},
    )
    chunks = [chunk async for chunk in stream]
    await client.close()
    usage = chunks[-1].usage
    assert usage is not None
    record = await asyncio.to_thread(wait_for_record, logged, request_id)
    assert record["stream"] is True and record["status"] == 200 and record["dialect"] == "orq"
    assert record["provider"] == "openai" and record["model"] == "gpt-4o"
    assert record["completion_tokens"] == usage.completion_tokens and record["total_tokens"] == usage.total_tokens
    assert record["ttft_ms"] is not None and 0 < record["ttft_ms"] <= record["latency_ms"]
    assert record["partial"] is False


def test_a_validation_error_is_recorded(logged: Stack) -> None:
    request_id = new_id()
    response = logged.post(
        "/v1/chat/completions",
        {"model": "openai/gpt-4o", "messages": MESSAGES, "temperature": 9},
        headers={"x-request-id": request_id},
    )
    assert response.status == 422
    record = wait_for_record(logged, request_id)
    assert record["status"] == 422 and record["error_type"] == "invalid_request_error"
    assert "temperature" in record["error_message"]
    assert record["provider"] is None and record["prompt_tokens"] == 0


def test_an_upstream_failure_is_recorded_as_502_with_its_provider(logged: Stack) -> None:
    logged.upstream.set_mode("broken-model", "status", 500)
    client = openai.OpenAI(base_url=logged.gateway.url + "/v1", api_key=KEY, max_retries=0)
    request_id = new_id()
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(
            model="openai/broken-model", messages=MESSAGES, extra_headers={"x-request-id": request_id}
        )
    assert info.value.status_code == 502
    record = wait_for_record(logged, request_id)
    assert record["status"] == 502 and record["error_type"] == "upstream_error"
    assert record["provider"] == "openai" and record["model"] == "broken-model"
    assert record["requested_model"] == "openai/broken-model"
    assert [(a["provider"], a["model"], a["status"]) for a in record["attempts"]] == [("openai", "broken-model", 500)]


def test_logs_list_filters_and_needs_a_key(logged: Stack) -> None:
    trace_id = new_id()
    client = openai.OpenAI(base_url=logged.gateway.url + "/v1", api_key=KEY, max_retries=0)
    ids = [new_id() for _ in range(3)]
    for request_id in ids:
        client.chat.completions.create(
            model="openai/gpt-4o",
            messages=MESSAGES,
            extra_headers={"x-request-id": request_id, "x-portkey-trace-id": trace_id},
        )
    wait_for_record(logged, ids[-1])
    listed = logged.get(f"/v1/logs?trace_id={trace_id}&limit=2").json()
    assert listed["total"] == 3 and listed["limit"] == 2
    assert [r["request_id"] for r in listed["data"]] == ids[::-1][:2]  # newest first
    rest = logged.get(f"/v1/logs?trace_id={trace_id}&limit=2&offset=2").json()
    assert [r["request_id"] for r in rest["data"]] == [ids[0]]
    assert logged.get(f"/v1/logs?trace_id={trace_id}&provider=vllm").json()["total"] == 0
    assert logged.get(f"/v1/logs?trace_id={trace_id}&status=200&provider=openai").json()["total"] == 3
    denied = logged.get("/v1/logs", key=None)
    assert denied.status == 401 and denied.json()["error"]["message"]
    assert logged.get(f"/v1/logs/{ids[0]}", key="sk-wrong").status == 401
    assert logged.get("/v1/logs/no-such-request").status == 404
    assert logged.get("/v1/logs?limit=0").status == 422


def test_health_reports_storage_and_the_recorder(logged: Stack) -> None:
    report = logged.get("/health").json()
    assert report["storage"] == {"backend": "sqlite", "ok": True, "schema_ready": True, "last_error": None}
    recorder = report["recorder"]
    assert recorder["running"] is True and recorder["queue_size"] == 1000 and recorder["healthy"] is True
    assert recorder["dropped"] == 0 and recorder["failed"] == 0 and recorder["queue_depth"] >= 0
    assert recorder["spool_records"] == 0 and recorder["spool_max_bytes"] == 256 * 1024 * 1024


def test_without_request_log_nothing_is_stored(stack: Stack) -> None:
    before = stack.get("/v1/logs").json()["total"]
    assert stack.post("/v1/chat/completions", {"model": "openai/gpt-4o", "messages": MESSAGES}).status == 200
    time.sleep(0.2)
    assert stack.get("/v1/logs").json()["total"] == before == 0


def test_a_graceful_shutdown_writes_every_record(upstream_thread: UpstreamThread, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'portico.db'}"
    upstream_thread.state.reset()
    responses: list[Response] = []
    with GatewayThread(logged_settings(upstream_thread.url, url)) as gateway:
        recorder = gateway.app.recorder
        recorder.sink = SlowSink(gateway.app.logs)
        stack = Stack(gateway, upstream_thread)
        for _ in range(25):
            responses.append(stack.post("/v1/chat/completions", {"model": "openai/gpt-4o", "messages": MESSAGES}))
        assert recorder.written < 25  # still queued or being written when the shutdown begins
    assert all(r.status == 200 for r in responses)
    assert recorder.written == 25 and recorder.failed == recorder.dropped == 0
    assert asyncio.run(_count(url)) == 25


class SlowSink:
    def __init__(self, repo: RequestLogRepo) -> None:
        self.repo = repo

    async def insert_many(self, records: Sequence[CallRecord]) -> None:
        await asyncio.sleep(0.3)
        await self.repo.insert_many(records)


async def _count(url: str) -> int:
    db = Database(url)
    try:
        return await RequestLogRepo(db).count()
    finally:
        await db.close()


def test_the_call_log_works_on_postgresql(upstream_thread: UpstreamThread, pg_schema_url: str) -> None:
    upstream_thread.state.reset()
    with GatewayThread(logged_settings(upstream_thread.url, pg_schema_url)) as gateway:
        stack = Stack(gateway, upstream_thread)
        request_id = new_id()
        client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=0)
        client.chat.completions.create(
            model="openai/gpt-4o", messages=MESSAGES, extra_headers={"x-request-id": request_id}
        )
        record = wait_for_record(stack, request_id)
        assert record["provider"] == "openai" and record["total_tokens"] > 0
        storage = stack.get("/health").json()["storage"]
        assert storage["backend"] == "postgresql" and storage["ok"] is True and storage["schema_ready"] is True
