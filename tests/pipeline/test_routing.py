"""Routing strategies and the retry loop, driven by a fake attempt function (no network)."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from portico.core.errors import ProviderError, UpstreamHTTPError, UpstreamTimeout
from portico.core.types import RetryPolicy, RoutingPlan, Target
from portico.pipeline.health import LocalHealth
from portico.pipeline.retry import BASE_DELAY_S, MAX_DELAY_S, Backoff
from portico.pipeline.routing import Router, pick_weighted


class Script:
    """Fails each model as scripted (a list of statuses to raise, consumed in order), then succeeds."""

    def __init__(self, failures: dict[str, list[int | str]], retry_after: float | None = None) -> None:
        self.failures = {k: list(v) for k, v in failures.items()}
        self.retry_after = retry_after
        self.calls: list[tuple[str, float | None]] = []

    async def __call__(self, target: Target, timeout_ms: float | None) -> str:
        self.calls.append((target.model, timeout_ms))
        pending = self.failures.get(target.model)
        if pending:
            what = pending.pop(0)
            if what == "timeout":
                raise UpstreamTimeout("slow", provider=target.model)
            raise UpstreamHTTPError(
                f"{what}",
                provider=target.model,
                upstream_status=int(what),
                retry_after=self.retry_after,
            )
        return target.model


class FakeSleep:
    """Records the delays asked for and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture(autouse=True)
def slept() -> FakeSleep:
    return FakeSleep()


def router(slept: FakeSleep, health: LocalHealth | None = None, max_retry_after: float = 30.0) -> Router:
    """Every router here backs off through a `Backoff` whose sleep is the fake."""
    backoff = Backoff(max_retry_after, sleep=slept)
    return Router(health or LocalHealth(failure_threshold=100), backoff=backoff)


async def test_retry_until_success_counts_attempts(slept: FakeSleep) -> None:
    script = Script({"a": [429, 429]})
    plan = RoutingPlan(targets=(Target("a"),), retry=RetryPolicy(count=3))
    assert await router(slept).run(plan, script) == "a"
    assert [m for m, _ in script.calls] == ["a", "a", "a"]
    assert len(slept.delays) == 2  # one backoff before each retry, none after the success
    assert 0 <= slept.delays[0] <= BASE_DELAY_S and 0 <= slept.delays[1] <= 2 * BASE_DELAY_S


async def test_router_backoff_goes_through_the_injected_sleep(slept: FakeSleep) -> None:
    """With real sleeps this takes 4 x 7 s; the fake is asked for exactly those delays and returns at once."""
    script = Script({"a": [429] * 4}, retry_after=7)
    plan = RoutingPlan(targets=(Target("a"),), retry=RetryPolicy(count=4))
    assert await router(slept, max_retry_after=30).run(plan, script) == "a"
    assert slept.delays == [7, 7, 7, 7]
    capped = Script({"a": [429]}, retry_after=120)
    assert await router(slept, max_retry_after=3).run(plan, capped) == "a"
    assert slept.delays[4:] == [3]


async def test_status_outside_on_codes_is_not_retried_but_falls_back(
    slept: FakeSleep,
) -> None:
    script = Script({"a": [500]})
    plan = RoutingPlan(mode="fallback", targets=(Target("a"), Target("b")), retry=RetryPolicy(count=3))
    assert await router(slept).run(plan, script) == "b"
    assert [m for m, _ in script.calls] == ["a", "b"]


async def test_timeouts_are_retried_whatever_on_codes_say(slept: FakeSleep) -> None:
    script = Script({"a": ["timeout", "timeout"]})
    plan = RoutingPlan(
        targets=(Target("a"),),
        retry=RetryPolicy(count=2, on_codes=frozenset({503})),
        timeout_ms=250,
    )
    assert await router(slept).run(plan, script) == "a"
    assert script.calls == [("a", 250), ("a", 250), ("a", 250)]


async def test_all_fail_raises_last_error(slept: FakeSleep) -> None:
    script = Script({"a": [429] * 5, "b": [503]})
    plan = RoutingPlan(mode="fallback", targets=(Target("a"), Target("b")), retry=RetryPolicy(count=1))
    with pytest.raises(ProviderError) as info:
        await router(slept).run(plan, script)
    assert info.value.upstream_status == 503
    assert [m for m, _ in script.calls] == ["a", "a", "b"]


async def test_portkey_on_status_codes_limits_fallback(slept: FakeSleep) -> None:
    script = Script({"a": [400]})
    plan = RoutingPlan(
        mode="fallback",
        targets=(Target("a"), Target("b")),
        on_status_codes=frozenset({429, 500}),
    )
    with pytest.raises(ProviderError):
        await router(slept).run(plan, script)
    assert [m for m, _ in script.calls] == ["a"]


def test_weighted_pick_matches_weights() -> None:
    nodes = (
        Target("a", weight=0.7),
        Target("b", weight=0.2),
        Target("c", weight=0.1),
        Target("z", weight=0),
    )
    rng = random.Random(42)
    counts = Counter(pick_weighted(nodes, rng.random()).model for _ in range(10_000))  # type: ignore[union-attr]
    assert counts["z"] == 0
    for model, weight in (("a", 0.7), ("b", 0.2), ("c", 0.1)):
        assert abs(counts[model] / 10_000 - weight) < 0.02


async def test_cooldown_skips_a_dead_target_and_probes_it_back(
    slept: FakeSleep,
) -> None:
    clock = [0.0]
    health = LocalHealth(failure_threshold=2, cooldown_seconds=10, clock=lambda: clock[0])
    script = Script({"a": [500, 500, 500]})
    plan = RoutingPlan(mode="fallback", targets=(Target("a"), Target("b")))
    r = router(slept, health)
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
    assert Backoff(max_retry_after=5).delay(0, error, policy) == 5
    assert Backoff(max_retry_after=30).delay(0, error, policy) == 7
    plain = UpstreamHTTPError("x", provider="p", upstream_status=429)
    assert all(0 <= Backoff().delay(n, plain, policy) <= MAX_DELAY_S for n in range(10))


async def test_backoff_sleeps_between_attempts_for_the_retry_after_given() -> None:
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

    assert await Backoff(sleep=sleep).run(attempt, RetryPolicy(count=2)) == "ok"
    assert slept == [1.5, 1.5]


async def test_backoff_sleep_is_an_attribute_read_at_each_retry() -> None:
    """Replacing `sleep` on a built `Backoff` takes effect (the old default argument did not)."""
    backoff = Backoff(max_retry_after=30, jitter=lambda low, high: high)
    fake = FakeSleep()
    backoff.sleep = fake
    failures = [UpstreamTimeout("slow", provider="p") for _ in range(3)]

    async def attempt() -> str:
        if failures:
            raise failures.pop()
        return "ok"

    assert await backoff.run(attempt, RetryPolicy(count=3)) == "ok"
    assert fake.delays == [
        BASE_DELAY_S,
        2 * BASE_DELAY_S,
        4 * BASE_DELAY_S,
    ]  # the jitter's upper bound each time


async def test_backoff_gives_up_after_count_retries_and_reraises() -> None:
    fake = FakeSleep()
    calls = 0

    async def attempt() -> str:
        nonlocal calls
        calls += 1
        raise UpstreamHTTPError("busy", provider="p", upstream_status=429, retry_after=60)

    with pytest.raises(UpstreamHTTPError):
        await Backoff(max_retry_after=2, sleep=fake).run(attempt, RetryPolicy(count=2))
    assert calls == 3 and fake.delays == [2, 2]
