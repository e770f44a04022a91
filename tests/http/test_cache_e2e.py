"""The response cache as clients meet it: `orq-ai-sdk`'s `cache` field, the `openai` SDK through `extra_body`, and
Portkey's headers/config — against a mock upstream that counts what reaches it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from orq_ai_sdk import Orq

from tests.conftest import KEY, Response, http, redis_problem, stack_settings
from tests.gateway_server import GatewayThread, free_port
from tests.spec_schemas import validate_chunk, validate_completion
from tests.upstreams import openai as openai_upstream
from tests.upstreams.server import UpstreamThread

OTHER_KEY = "sk-portico-other-tenant"
CACHE: Any = {"type": "exact_match", "ttl": 60}


def ask(text: str | None = None) -> list[Any]:
    return [{"role": "user", "content": text or f"question {uuid.uuid4().hex}"}]


class CacheStack:
    def __init__(self, gateway: GatewayThread, upstream: UpstreamThread) -> None:
        self.gateway, self.upstream = gateway, upstream
        self.orq = Orq(api_key=KEY, server_url=gateway.url)
        self.openai = openai.OpenAI(base_url=gateway.url + "/v2/router", api_key=KEY, max_retries=0)

    def calls(self) -> int:
        return len(self.upstream.state.requests)

    def post(
        self,
        body: Any,
        key: str = KEY,
        headers: dict[str, str] | None = None,
        path: str = "/v2/router/chat/completions",
    ) -> Response:
        sent = {"content-type": "application/json", "authorization": f"Bearer {key}", **(headers or {})}
        return http("POST", self.gateway.url + path, json.dumps(body).encode(), sent)


@pytest.fixture(scope="module")
def cs() -> Iterator[CacheStack]:
    with UpstreamThread([openai_upstream.install]) as upstream:
        settings = stack_settings(upstream.url, auth={"keys": [KEY, OTHER_KEY]})
        with GatewayThread(settings) as gateway:
            yield CacheStack(gateway, upstream)


def test_second_identical_request_is_served_from_cache(cs: CacheStack) -> None:
    messages = ask()
    first = cs.orq.router.chat.completions.create(model="openai/gpt-4o", messages=messages, cache=CACHE)
    before = cs.calls()
    second = cs.orq.router.chat.completions.create(model="openai/gpt-4o", messages=messages, cache=CACHE)
    assert cs.calls() == before
    assert second.choices[0].message.content == first.choices[0].message.content
    raw = cs.openai.chat.completions.with_raw_response.create(
        model="openai/gpt-4o", messages=messages, extra_body={"cache": CACHE}
    )
    assert raw.headers["x-portico-cache"] == "HIT" and "x-portkey-cache-status" not in raw.headers
    validate_completion(raw.parse().model_dump(exclude_unset=True))
    portkey = cs.post(
        {"model": "openai/gpt-4o", "messages": messages, "cache": CACHE}, headers={"x-portkey-trace-id": "t-1"}
    )
    assert portkey.headers["x-portkey-cache-status"] == "HIT" and portkey.headers["x-portkey-trace-id"] == "t-1"
    assert cs.calls() == before


def test_what_enters_the_key(cs: CacheStack) -> None:
    messages = ask()
    base: dict[str, Any] = {"model": "openai/gpt-4o", "messages": messages, "cache": CACHE, "temperature": 0.5}
    assert cs.post(base).headers["x-portico-cache"] == "MISS"
    n = cs.calls()
    # Only labels changed: metadata, name, identity, thread, retry/timeout settings, key order → hit.
    relabelled = {
        "cache": CACHE,
        "temperature": 0.5,
        "messages": messages,
        "model": "openai/gpt-4o",
        "metadata": {"team": "x"},
        "name": "trace-name",
        "identity": {"id": "user-1"},
        "thread": {"id": "t-1"},
        "retry": {"count": 2},
        "timeout": {"call_timeout": 5000},
    }
    assert cs.post(relabelled).headers["x-portico-cache"] == "HIT"
    assert cs.post(base, headers={"x-portkey-trace-id": "another-trace"}).headers["x-portico-cache"] == "HIT"
    assert cs.calls() == n
    # What the model sees changed → miss.
    assert cs.post({**base, "temperature": 0.6}).headers["x-portico-cache"] == "MISS"
    assert cs.post({**base, "model": "openai/gpt-4o-mini"}).headers["x-portico-cache"] == "MISS"
    assert cs.post({**base, "max_tokens": 10}).headers["x-portico-cache"] == "MISS"
    assert cs.calls() == n + 3


def test_variables_are_applied_before_the_key(cs: CacheStack) -> None:
    tag = uuid.uuid4().hex
    templ = [{"role": "user", "content": "Hello {{name}} " + tag}]
    body = {"model": "openai/gpt-4o", "messages": templ, "cache": CACHE}
    assert cs.post({**body, "variables": {"name": "Ada"}}).headers["x-portico-cache"] == "MISS"
    assert cs.post({**body, "variables": {"name": "Bob"}}).headers["x-portico-cache"] == "MISS"
    assert (
        cs.post({**body, "messages": [{"role": "user", "content": f"Hello Ada {tag}"}]}).headers["x-portico-cache"]
        == "HIT"
    )


def test_tenants_and_namespaces_are_isolated(cs: CacheStack) -> None:
    body = {"model": "openai/gpt-4o", "messages": ask(), "cache": CACHE}
    assert cs.post(body).headers["x-portico-cache"] == "MISS"
    assert cs.post(body, key=OTHER_KEY).headers["x-portico-cache"] == "MISS"
    assert cs.post(body, key=OTHER_KEY).headers["x-portico-cache"] == "HIT"
    ns = {"x-portkey-cache-namespace": "team-blue"}
    assert cs.post(body, headers=ns).headers["x-portico-cache"] == "MISS"
    assert cs.post(body, headers=ns).headers["x-portico-cache"] == "HIT"


def test_force_refresh_reaches_upstream_and_updates_the_entry(cs: CacheStack) -> None:
    body = {"model": "openai/gpt-4o", "messages": ask(), "cache": CACHE}
    cs.post(body)
    n = cs.calls()
    refreshed = cs.post(body, headers={"x-portkey-cache-force-refresh": "true"})
    assert refreshed.headers["x-portico-cache"] == "REFRESH" and cs.calls() == n + 1
    hit = cs.post(body)
    assert hit.headers["x-portico-cache"] == "HIT" and json.loads(hit.body)["id"] == json.loads(refreshed.body)["id"]


def test_ttl_expiry(cs: CacheStack) -> None:
    body = {"model": "openai/gpt-4o", "messages": ask(), "cache": {"type": "exact_match", "ttl": 1}}
    cs.post(body)
    assert cs.post(body).headers["x-portico-cache"] == "HIT"
    time.sleep(1.2)
    assert cs.post(body).headers["x-portico-cache"] == "MISS"


def test_errors_are_never_cached(cs: CacheStack) -> None:
    body = {"model": "openai/gpt-4o", "messages": ask(), "cache": CACHE}
    cs.upstream.state.fail_with(500, "boom", times=1)
    assert cs.post(body).status == 502
    response = cs.post(body)
    assert response.status == 200 and response.headers["x-portico-cache"] == "MISS"


async def test_stream_hit_is_replayed_as_a_proper_stream(cs: CacheStack) -> None:
    messages = ask()
    client = openai.AsyncOpenAI(base_url=cs.gateway.url + "/v2/router", api_key=KEY, max_retries=0)
    cs.post({"model": "openai/gpt-4o", "messages": messages, "cache": CACHE})  # filled by a non-stream call
    n = cs.calls()
    stream = await client.chat.completions.create(
        model="openai/gpt-4o",
        messages=messages,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"cache": CACHE},
    )
    chunks = [c async for c in stream]
    assert cs.calls() == n
    for chunk in chunks:
        validate_chunk(chunk.model_dump(exclude_unset=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert (
        "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        == f"Echo from gpt-4o: {messages[0]['content']}"
    )
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0
    await client.close()


def test_stream_fills_the_cache_for_non_stream(cs: CacheStack) -> None:
    messages = ask()
    text = "".join(
        c.choices[0].delta.content or ""
        for c in cs.openai.chat.completions.create(
            model="openai/gpt-4o", messages=messages, stream=True, extra_body={"cache": CACHE}
        )
        if c.choices
    )
    n = cs.calls()
    hit = cs.openai.chat.completions.with_raw_response.create(
        model="openai/gpt-4o", messages=messages, extra_body={"cache": CACHE}
    )
    assert hit.headers["x-portico-cache"] == "HIT" and cs.calls() == n
    assert hit.parse().choices[0].message.content == text


def test_a_cut_stream_is_not_cached(cs: CacheStack) -> None:
    messages = ask()
    cs.upstream.state.set_mode("gpt-cut", "cut_after", 3)
    cs.post({"model": "openai/gpt-cut", "messages": messages, "cache": CACHE, "stream": True})
    cs.upstream.state.reset()
    assert (
        cs.post({"model": "openai/gpt-cut", "messages": messages, "cache": CACHE}).headers["x-portico-cache"] == "MISS"
    )


def test_portkey_config_turns_caching_on(cs: CacheStack) -> None:
    from portkey_ai import Portkey

    client = Portkey(base_url=cs.gateway.url + "/v1", api_key=KEY, config={"cache": {"mode": "simple", "max_age": 60}})
    messages = ask()
    first = client.chat.completions.create(model="openai/gpt-4o", messages=messages)
    second = client.chat.completions.create(model="openai/gpt-4o", messages=messages)
    assert first.get_headers()["cache-status"] == "MISS" and second.get_headers()["cache-status"] == "HIT"


# ---- Redis: shared by instances, fail open ------------------------------------------------------------------------


@pytest.fixture
def private_redis() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A Redis of our own, so stopping it mid-test does not disturb anything else on the machine."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("no Redis: redis-server is not on PATH (CI installs it)")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while (problem := redis_problem("127.0.0.1", port, timeout=0.2)) is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        if problem is not None:
            pytest.skip(f"no Redis: redis-server on port {port} did not answer within 10 s ({problem})")
        yield f"redis://127.0.0.1:{port}/0", process
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(5)


def test_redis_is_shared_by_two_instances_and_fails_open(private_redis: tuple[str, subprocess.Popen[bytes]]) -> None:
    url, process = private_redis
    with UpstreamThread([openai_upstream.install]) as upstream:
        settings = stack_settings(upstream.url, cache={"url": url})
        with GatewayThread(settings) as one, GatewayThread(settings) as two:
            body = {"model": "openai/gpt-4o", "messages": ask(), "cache": CACHE}
            headers = {"content-type": "application/json", "authorization": f"Bearer {KEY}"}
            raw = json.dumps(body).encode()
            assert (
                http("POST", one.url + "/v2/router/chat/completions", raw, headers).headers["x-portico-cache"] == "MISS"
            )
            assert (
                http("POST", two.url + "/v2/router/chat/completions", raw, headers).headers["x-portico-cache"] == "HIT"
            )
            assert len(upstream.state.requests) == 1
            assert json.loads(http("GET", one.url + "/health").body)["cache"]["ok"] is True

            process.terminate()
            process.wait(5)
            for _ in range(3):
                response = http("POST", two.url + "/v2/router/chat/completions", raw, headers, timeout=10)
                assert response.status == 200
            assert response.headers["x-portico-cache"] == "BYPASS"
            assert len(upstream.state.requests) == 4
            health = json.loads(http("GET", two.url + "/health").body)
            assert health["status"] == "degraded" and health["cache"]["ok"] is False


def test_memory_cache_byte_bound_holds() -> None:
    import asyncio

    from portico.cache.memory import MemoryCache

    async def flood() -> MemoryCache:
        cache = MemoryCache(max_bytes=64 * 1024)
        for i in range(5000):
            await cache.set(f"key-{i}", os.urandom(1000), 60)
            assert cache.size_bytes <= cache.max_bytes
        return cache

    cache = asyncio.run(flood())
    assert 0 < len(cache) < 70
    assert asyncio.run(cache.get("key-4999")) is not None and asyncio.run(cache.get("key-0")) is None
