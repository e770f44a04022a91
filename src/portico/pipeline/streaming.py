"""Relay a committed stream to the client: shape usage the way the client asked and account what passed.

The gateway always asks upstreams for usage (to account every stream); a client that did not ask for it never
sees the usage chunk. A stream that breaks after content was sent marks the call partial and re-raises, so the
HTTP layer ends it with an explicit error event — never a clean-looking end. This is the outermost layer of a
stream: stages wrap the upstream's chunks before they get here, so they see usage whatever the client asked.
A `RelayBlock` (whole upstream events, once content flows: `openai_relay.py`) passes as it is, its
`"usage":null` keys cut out of its bytes for a client that did not ask. The usage chunk a client asked for also
carries the call's `cost_usd` when it is priced (the stream's headers left before its usage was known).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from portico.core.errors import ProviderError
from portico.core.types import ChatChunk, ChatRequest, LastBatch, Usage
from portico.observability.cost import with_cost
from portico.pipeline.served import Served
from portico.providers.openai_relay import RelayBlock

PriceServed = Callable[[Served], float | None]


class StreamRelay:
    def __init__(self, request: ChatRequest, served: Served, price: PriceServed | None = None) -> None:
        self._request = request
        self._served = served
        self._price = price
        """Prices the call once its usage is known: the client that asked for usage finds `usage.cost_usd`."""

    async def run(
        self, first: list[list[ChatChunk]], rest: AsyncIterator[list[ChatChunk]]
    ) -> AsyncIterator[list[ChatChunk]]:
        try:
            for batch in first:
                if shaped := self._shape(batch):
                    yield shaped
            async for batch in rest:
                if shaped := self._shape(batch):
                    yield shaped
        except ProviderError:
            self._served.partial = True
            raise
        finally:
            aclose = getattr(rest, "aclose", None)
            if aclose is not None:
                await aclose()

    def _shape(self, batch: list[ChatChunk]) -> list[ChatChunk]:
        for chunk in batch:
            if chunk.has_usage_key:
                break
        else:
            return batch
        include = self._request.include_usage
        out: list[ChatChunk] = []
        for chunk in batch:
            if not chunk.has_usage_key:  # most chunks: relayed as they are
                out.append(chunk)
                continue
            usage = chunk.usage
            if usage:
                self._served.usage = Usage.from_openai(usage)
            if include:
                out.append(with_cost(chunk, self._price(self._served)) if usage and self._price else chunk)
            elif type(chunk) is RelayBlock:  # its usage keys are all `"usage":null`: cut out of the bytes
                out.append(chunk.without_usage())
            elif chunk.has_choices:
                out.append(ChatChunk({k: v for k, v in chunk.data.items() if k != "usage"}))
        return LastBatch(out) if type(batch) is LastBatch else out  # the usage chunk usually comes in the last
