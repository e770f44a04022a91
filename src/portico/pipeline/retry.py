"""The only retry loop in Portico: retries of one target, exponential backoff with full jitter, Retry-After honoured.

A retry is for the *same* target; moving on to another target is the routing strategy's business.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from portico.core.errors import ProviderError, UpstreamConnectionError, UpstreamProtocolError, UpstreamTimeout
from portico.core.types import RetryPolicy

T = TypeVar("T")

BASE_DELAY_S = 0.05
MAX_DELAY_S = 2.0


def is_retryable(error: ProviderError, policy: RetryPolicy) -> bool:
    """Statuses in `on_codes`, plus failures that have no status (connection, timeout, garbage) (AMB-12)."""
    if isinstance(error, UpstreamTimeout | UpstreamConnectionError | UpstreamProtocolError):
        return True
    return error.upstream_status is not None and error.upstream_status in policy.on_codes


def backoff_delay(retry_number: int, error: ProviderError, policy: RetryPolicy, max_retry_after: float) -> float:
    """Full jitter (AWS architecture blog): uniform(0, min(cap, base * 2^n)); Retry-After wins, up to a cap."""
    if policy.use_retry_after and error.retry_after is not None:
        return min(error.retry_after, max_retry_after)
    return random.uniform(0, min(MAX_DELAY_S, BASE_DELAY_S * (2**retry_number)))


async def with_retries(
    attempt: Callable[[], Awaitable[T]],
    policy: RetryPolicy | None,
    *,
    max_retry_after: float = 30.0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """Run `attempt`, then up to `policy.count` retries while the error is retryable; re-raise the last error."""
    retries = 0
    while True:
        try:
            return await attempt()
        except ProviderError as error:
            if policy is None or retries >= policy.count or not is_retryable(error, policy):
                raise
            await sleep(backoff_delay(retries, error, policy, max_retry_after))
            retries += 1
