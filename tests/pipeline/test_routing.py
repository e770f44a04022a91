"""Routing strategies and the retry loop, driven by a fake attempt function (no network)."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from portico.core.errors import ProviderError, UpstreamHTTPError, UpstreamTimeout
from portico.core.types import RetryPolicy, RoutingPlan, Target
from portico.pipeline.health import LocalHealth
from portico.pipeline.retry import backoff_delay, with_retries
from portico.pipeline.routing import Router, pick_weighted


class Script:
    """Fails each model as scripted (a list of statuses to raise, consumed in order), then succeeds."""

    def __init__(self, failures: dict[str, list[int | str]]) -> None:
        self.failures = {k: list(v) for k, v in failures.items()}
        self.calls: list[tuple[str, float | None]] = []

    async def __call__(self, target: Target, timeout_ms: float | None) -> str:
        self.calls.append((target.model, timeout_ms))
        pending = self.failures.get(target.model)
        if pending:
            what = pending.pop(0)
            if what == "timeout":
                raise UpstreamTimeout("slow", provider=target.model)
            raise UpstreamHTTPError(f"{what}", provider=target.model, upstream_status=int(what))
        return target.model


def router() -> Router:
    return Router(LocalHealth(failure_threshold=100))


@pytest.fixture(autouse=True)
def instant_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_sleep(_: float) -> None:
        return None

    monkeypatch.setattr("portico.pipeline.retry.asyncio.sleep", no_sleep)


async def test_retry_until_success_counts_attempts() -> None:
    script = Script({"a": [429, 429]})
    plan = RoutingPlan(targets=(Target("a"),), retry=RetryPolicy(count=3))
    assert await router().run(plan, script) == "a"
    assert [m for m, _ in script.calls] == ["a", "a", "a"]


async def test_status_outside_on_codes_is_not_retried_but_falls_back() -> None:
    script = Script({"a": [500]})
    plan = RoutingPlan(mode="fallback", targets=(Target("a"), Target("b")), retry=RetryPolicy(count=3))
    assert await router().run(plan, script) == "b"
    assert [m for m, _ in script.calls] == ["a", "b"]


async def test_timeouts_are_retried_whatever_on_codes_say() -> None:
    script = Script({"a": ["timeout", "timeout"]})
    plan = RoutingPlan(targets=(Target("a"),), retry=RetryPolicy(count=2, on_codes=frozenset({503})), timeout_ms=250)
    assert await router().run(plan, script) == "a"
    assert script.calls == [("a", 250), ("a", 250), ("a", 250)]


async def test_all_fail_raises_last_error() -> None:
    script = Script({"a": [429] * 5, "b": [503]})
    plan = RoutingPlan(mode="fallback", targets=(Target("a"), Target("b")), retry=RetryPolicy(count=1))
    with pytest.raises(ProviderError) as info:
        await router().run(plan, script)
    assert info.value.upstream_status == 503
    assert [m for m, _ in script.calls] == ["a", "a", "b"]


async def test_portkey_on_status_codes_limits_fallback() -> None:
    script = Script({"a": [400]})
    plan = RoutingPlan(mode="fallback", targets=(Target("a"), Target("b")), on_status_codes=frozenset({429, 500}))
    with pytest.raises(ProviderError):
        await router().run(plan, script)
    assert [m for m, _ in script.calls] == ["a"]


def test_weighted_pick_matches_weights() -> None:
    nodes = (Target("a", weight=0.7), Target("b", weight=0.2), Target("c", weight=0.1), Target("z", weight=0))
    rng = random.Random(42)
    counts = Counter(pick_weighted(nodes, rng.random()).model for _ in range(10_000))  # type: ignore[union-attr]
    assert counts["z"] == 0
    for model, weight in (("a", 0.7), ("b", 0.2), ("c", 0.1)):
        assert abs(counts[model] / 10_000 - weight) < 0.02


async def test_cooldown_skips_a_dead_target_and_probes_it_back() -> None:
    clock = [0.0]
    health = LocalHealth(failure_threshold=2, cooldown_seconds=10, clock=lambda: clock[0])
    script = Script({"a": [500, 500, 500]})
    plan = RoutingPlan(mode="fallback", targets=(Target("a"), Target("b")))
    r = Router(health)
    for _ in range(2):
        assert await r.run(plan, script) == "b"
    script.calls.clear()
    assert await r.run(plan, script) == "b"
    assert [m for m, _ in script.calls] == ["b"]  # a is cooling: skipped
    clock[0] = 11
    script.calls.clear()
    assert await r.run(plan, script) == "b"  # probe fails once more, cools again
    assert [m for m, _ in script.calls] == ["a", "b"]
    clock[0] = 30
    script.calls.clear()
    assert await r.run(plan, script) == "a"  # recovered
    assert await health.is_cooling("a") is False


async def test_backoff_honours_retry_after_with_a_cap() -> None:
    policy = RetryPolicy(count=3)
    error = UpstreamHTTPError("slow down", provider="p", upstream_status=429, retry_after=7)
    assert backoff_delay(0, error, policy, max_retry_after=5) == 5
    assert backoff_delay(0, error, policy, max_retry_after=30) == 7
    plain = UpstreamHTTPError("x", provider="p", upstream_status=429)
    assert all(0 <= backoff_delay(n, plain, policy, 30) <= 2.0 for n in range(10))


async def test_with_retries_sleeps_between_attempts() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    calls = 0

    async def attempt() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise UpstreamHTTPError("busy", provider="p", upstream_status=429, retry_after=1.5)
        return "ok"

    assert await with_retries(attempt, RetryPolicy(count=2), sleep=sleep) == "ok"
    assert slept == [1.5, 1.5]
