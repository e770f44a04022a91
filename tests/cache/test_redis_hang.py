"""A Redis that accepts connections and never answers (a proxy in `hang` mode in front of the real one): no request
waits on it once it is known to be down, and it is back in use within about a second of answering again."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from portico.cache.redis import RedisCache
from portico.pipeline.health_redis import RedisHealth
from tests.conftest import KEY, Response, http, stack_settings
from tests.faults.tcp_proxy import TcpProxy
from tests.gateway_server import GatewayThread
from tests.upstreams import openai as openai_upstream
from tests.upstreams.server import UpstreamThread

REDIS = ("127.0.0.1", 6379)


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    try:
        with socket.create_connection(REDIS, timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            if not sock.recv(16).startswith(b"+PONG"):
                pytest.skip("the server at 127.0.0.1:6379 is not Redis")
    except OSError as error:
        pytest.skip(f"Redis at 127.0.0.1:6379 does not answer: {error}")
    with TcpProxy(*REDIS) as running:
        yield running


async def until(condition: object, limit: float) -> float:
    """Seconds until `condition()` holds; fails after `limit`."""
    start = time.monotonic()
    while not condition():  # type: ignore[operator]
        assert time.monotonic() - start < limit, "condition not reached in time"
        await asyncio.sleep(0.02)
    return time.monotonic() - start


def wait_healthy(url: str, limit: float) -> float:
    start = time.monotonic()
    while json.loads(http("GET", url + "/health").body)["status"] != "ok":
        assert time.monotonic() - start < limit, f"/health not ok within {limit} s"
        time.sleep(0.05)
    return time.monotonic() - start


def test_cache_on_a_hung_redis_costs_one_timeout_then_nothing(proxy: TcpProxy) -> None:
    key = f"hang-{uuid.uuid4().hex}"

    async def scenario() -> None:
        cache = RedisCache(f"redis://127.0.0.1:{proxy.port}/0?socket_timeout=0.6")
        try:
            await cache.set(key, b"v1", 30)
            assert await cache.get(key) == b"v1" and cache.health().ok

            await asyncio.to_thread(proxy.mode, "hang")
            first = asyncio.create_task(cache.get(key))
            await asyncio.sleep(0.3)
            late_start = time.monotonic()
            late = [asyncio.create_task(cache.get(key)) for _ in range(20)]
            assert await first is None
            first_done = time.monotonic()
            assert await asyncio.gather(*late) == [None] * 20
            # on their own the late ones would time out 0.6 s after they began: the first failure cut them short
            assert time.monotonic() - first_done < 0.15 and time.monotonic() - late_start < 0.5
            assert not cache.health().ok and "unreachable" in cache.health().detail

            start = time.monotonic()
            for _ in range(200):
                assert await cache.get(key) is None
                await cache.set(key, b"dropped", 30)
            assert time.monotonic() - start < 0.05  # no await reaches the socket while it is down

            await asyncio.to_thread(proxy.mode, "pass")
            back_after = await until(lambda: cache.health().ok, 3)
            assert await cache.get(key) == b"v1"
            print(f"\ncache: back in use {back_after:.2f} s after Redis answered again")
        finally:
            await cache.close()

    asyncio.run(scenario())


def test_routing_state_on_a_hung_redis_falls_back_to_the_process_at_once(proxy: TcpProxy) -> None:
    target = f"hang-target-{uuid.uuid4().hex}"

    async def scenario() -> None:
        health = RedisHealth(f"redis://127.0.0.1:{proxy.port}/0", failure_threshold=2, cooldown_seconds=30)
        try:
            assert not await health.is_cooling(target) and health.ok
            await asyncio.to_thread(proxy.mode, "hang")
            start = time.monotonic()
            await health.record(target, ok=False)  # pays the one 0.25 s timeout that finds Redis down
            assert not health.ok and time.monotonic() - start < 0.4
            start = time.monotonic()
            await health.record(target, ok=False)
            assert await health.is_cooling(target)  # the in-process state took over, and counted both failures
            assert time.monotonic() - start < 0.01
            await asyncio.to_thread(proxy.mode, "pass")
            await until(lambda: health.ok, 3)
            assert not await health.is_cooling(target)  # Redis never saw the failures of its outage
        finally:
            await health.close()

    asyncio.run(scenario())


def test_gateway_bursts_on_a_hung_redis_are_not_delayed(proxy: TcpProxy) -> None:
    cache = {"type": "exact_match", "ttl": 60}
    body = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": uuid.uuid4().hex}], "cache": cache}
    raw = json.dumps(body).encode()
    headers = {"content-type": "application/json", "authorization": f"Bearer {KEY}"}

    with UpstreamThread([openai_upstream.install]) as upstream:
        settings = stack_settings(upstream.url, cache={"url": f"redis://127.0.0.1:{proxy.port}/0"})
        walls: list[float] = []
        with GatewayThread(settings) as gw, ThreadPoolExecutor(50) as pool:

            def post() -> tuple[Response, float]:
                start = time.perf_counter()
                response = http("POST", gw.url + "/v2/router/chat/completions", raw, headers, timeout=10)
                return response, time.perf_counter() - start

            def burst() -> tuple[list[Response], float]:
                """50 at once; the p99 (of 50: the slowest) of the time spent inside the gateway, which excludes
                the upstream and this process's 50 client threads queueing for the GIL (printed beside it)."""
                results = list(pool.map(lambda _: post(), range(50)))
                assert all(r.status == 200 for r, _ in results)
                inside = max(float(r.headers["x-portico-overhead-ms"]) for r, _ in results) / 1000
                walls.append(max(s for _, s in results))
                return [r for r, _ in results], inside

            assert post()[0].headers["x-portico-cache"] == "MISS"
            assert post()[0].headers["x-portico-cache"] == "HIT"
            burst()  # opens the pool's Redis connections (through the proxy, in this process: slow)
            wait_healthy(gw.url, 3)  # a loaded test machine may have taken a slow reply for a dead Redis
            walls.clear()
            _, healthy_p99 = burst()

            proxy.mode("hang")
            _, finding_p99 = burst()  # this burst pays the one timeout that finds Redis down
            health = json.loads(http("GET", gw.url + "/health").body)
            assert health["status"] == "degraded" and health["cache"]["ok"] is False
            time.sleep(1.2)  # background probes are running against the hung Redis meanwhile
            responses, down_p99 = burst()
            assert {r.headers["x-portico-cache"] for r in responses} == {"BYPASS"}
            assert down_p99 < 0.3

            proxy.mode("pass")
            back_after = wait_healthy(gw.url, 2.5)
            assert post()[0].headers["x-portico-cache"] == "HIT"  # written before the outage, read again after
    print(
        f"\nburst of 50, p99 inside the gateway (client wall clock): healthy {healthy_p99 * 1000:.0f} "
        f"({walls[0] * 1000:.0f}) ms, the burst that finds Redis hung {finding_p99 * 1000:.0f} ({walls[1] * 1000:.0f}) "
        f"ms, Redis known down {down_p99 * 1000:.0f} ({walls[2] * 1000:.0f}) ms; cache back {back_after:.2f} s after Redis"
    )
    assert finding_p99 < 0.5  # one 0.25 s timeout, shared by the whole burst
