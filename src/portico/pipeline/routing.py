"""Routing strategies over a target tree: single, fallback and loadbalance, each its own small function.

A strategy only chooses *which* target runs next; one target's retries live in `retry.py`, and what an attempt
does (a completion, or opening a stream up to its first token) is the caller's `AttemptFn`.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from portico.core.errors import ProviderError, UpstreamConnectionError, UpstreamTimeout
from portico.core.types import RetryPolicy, RoutingPlan, Target
from portico.pipeline.health import HealthState
from portico.pipeline.retry import Backoff

T = TypeVar("T")
AttemptFn = Callable[[Target, float | None], Awaitable[T]]
"""Run one attempt against a target with a per-attempt timeout in milliseconds (None: the provider's default)."""

Node = Target | RoutingPlan


class Router:
    def __init__(
        self,
        health: HealthState,
        *,
        max_retry_after: float = 30.0,
        rng: Callable[[], float] = random.random,
        backoff: Backoff | None = None,
    ) -> None:
        self.health = health
        self.rng = rng
        self.backoff = backoff if backoff is not None else Backoff(max_retry_after)
        """The wait between one target's retries; tests pass `Backoff(sleep=fake)`."""

    async def run(self, plan: RoutingPlan, attempt: AttemptFn[T]) -> T:
        return await self._run_node(plan, None, None, attempt)

    async def _run_node(
        self, node: Node, retry: RetryPolicy | None, timeout_ms: float | None, attempt: AttemptFn[T]
    ) -> T:
        if isinstance(node, Target):
            return await self._run_target(node, node.retry or retry, node.timeout_ms or timeout_ms, attempt)
        retry = node.retry or retry
        timeout_ms = node.timeout_ms or timeout_ms
        if node.mode == "fallback":
            return await run_fallback(self, node, retry, timeout_ms, attempt)
        if node.mode == "loadbalance":
            return await run_loadbalance(self, node, retry, timeout_ms, attempt)
        return await self._run_node(node.targets[0], retry, timeout_ms, attempt)

    async def _run_target(
        self, target: Target, retry: RetryPolicy | None, timeout_ms: float | None, attempt: AttemptFn[T]
    ) -> T:
        key = target_key(target)

        async def once() -> T:
            try:
                result = await attempt(target, timeout_ms)
            except ProviderError as error:
                if error.retryable:  # a 400 says nothing about the target's health
                    await self.health.record(key, ok=False)
                raise
            await self.health.record(key, ok=True)
            return result

        return await self.backoff.run(once, retry)

    async def healthy_first(self, nodes: Sequence[Node]) -> list[Node]:
        """Cooled-down targets are skipped while any other is available, and tried last (as probes) otherwise."""
        ready: list[Node] = []
        cooling: list[Node] = []
        for node in nodes:
            cooled = isinstance(node, Target) and await self.health.is_cooling(target_key(node))
            (cooling if cooled else ready).append(node)
        return ready or cooling


async def run_fallback(
    router: Router, plan: RoutingPlan, retry: RetryPolicy | None, timeout_ms: float | None, attempt: AttemptFn[T]
) -> T:
    """Try each target in order until one succeeds; `on_status_codes` (Portkey) narrows what falls through."""
    last: ProviderError | None = None
    for node in await router.healthy_first(plan.targets):
        try:
            return await router._run_node(node, retry, timeout_ms, attempt)
        except ProviderError as error:
            last = error
            if plan.on_status_codes is not None and not _falls_through(error, plan.on_status_codes):
                raise
    if last is None:
        raise RuntimeError("a fallback plan needs at least one target")
    raise last


async def run_loadbalance(
    router: Router, plan: RoutingPlan, retry: RetryPolicy | None, timeout_ms: float | None, attempt: AttemptFn[T]
) -> T:
    """One weighted pick among the healthy targets; the other members are not implicit fallbacks (AMB-14)."""
    candidates = await router.healthy_first(plan.targets)
    return await router._run_node(pick_weighted(candidates, router.rng()), retry, timeout_ms, attempt)


def pick_weighted(nodes: Sequence[Node], roll: float) -> Node:
    """`roll` in [0, 1); a node wins with probability weight / sum(weights). Zero weights never win."""
    total = sum(max(n.weight, 0.0) for n in nodes)
    if total <= 0:
        return nodes[0]
    point = roll * total
    for node in nodes:
        point -= max(node.weight, 0.0)
        if point < 0:
            return node
    return nodes[-1]


def _falls_through(error: ProviderError, codes: frozenset[int]) -> bool:
    if isinstance(error, UpstreamTimeout | UpstreamConnectionError):
        return True
    return error.upstream_status is not None and error.upstream_status in codes


def target_key(target: Target) -> str:
    return f"{target.provider}:{target.model}" if target.provider else target.model
