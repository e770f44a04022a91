"""The only retry loop in Portico: retries of one target, exponential backoff with full jitter, Retry-After honoured.

A retry is for the *same* target; moving on to another target is the routing strategy's business. The wait
between attempts goes through `Backoff.sleep`, an attribute, so a test (or a caller) replaces it on the object.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from portico.core.errors import ProviderError, UpstreamConnectionError, UpstreamProtocolError, UpstreamTimeout
from portico.core.types import RetryPolicy

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]

BASE_DELAY_S = 0.05
MAX_DELAY_S = 2.0


def is_retryable(error: ProviderError, policy: RetryPolicy) -> bool:
    """Statuses in `on_codes`, plus failures that have no status (connection, timeout, garbage) (AMB-12)."""
    if isinstance(error, UpstreamTimeout | UpstreamConnectionError | UpstreamProtocolError):
        return True
    return error.upstream_status is not None and error.upstream_status in policy.on_codes


class Backoff:
    """How long to wait before retry n, and the waiting itself; built once (per `Router`), not per request.

    `sleep` and `jitter` are looked up on the instance at each retry, so replacing them after construction works
    (a default argument would have bound `asyncio.sleep` when the module was imported, out of a test's reach).
    """

    __slots__ = ("jitter", "max_retry_after", "sleep")

    def __init__(
        self,
        max_retry_after: float = 30.0,
        *,
        sleep: Sleep | None = None,
        jitter: Callable[[float, float], float] | None = None,
    ) -> None:
        self.max_retry_after = max_retry_after
        self.sleep: Sleep = sleep if sleep is not None else asyncio.sleep
        self.jitter: Callable[[float, float], float] = jitter if jitter is not None else random.uniform

    def delay(self, retry_number: int, error: ProviderError, policy: RetryPolicy) -> float:
        """Full jitter (AWS architecture blog): uniform(0, min(cap, base * 2^n)); Retry-After wins, up to a cap."""
        if policy.use_retry_after and error.retry_after is not None:
            return min(error.retry_after, self.max_retry_after)
        return self.jitter(0, min(MAX_DELAY_S, BASE_DELAY_S * (2**retry_number)))

    async def run(self, attempt: Callable[[], Awaitable[T]], policy: RetryPolicy | None) -> T:
        """Run `attempt`, then up to `policy.count` retries while the error is retryable; re-raise the last error."""
        retries = 0
        while True:
            try:
                return await attempt()
            except ProviderError as error:
                if policy is None or retries >= policy.count or not is_retryable(error, policy):
                    raise
                await self.sleep(self.delay(retries, error, policy))
                retries += 1
