"""Relay a committed stream to the client: shape usage the way the client asked and account what passed.

The gateway always asks upstreams for usage (to account every stream); a client that did not ask for it never
sees the usage chunk. A stream that breaks after content was sent marks the call partial and re-raises, so the
HTTP layer ends it with an explicit error event — never a clean-looking end. This is the outermost layer of a
stream: stages wrap the upstream's chunks before they get here, so they see usage whatever the client asked.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from portico.core.errors import ProviderError
from portico.core.types import ChatChunk, ChatRequest, Usage
from portico.pipeline.served import Served


class StreamRelay:
    def __init__(self, request: ChatRequest, served: Served) -> None:
        self._request = request
        self._served = served

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
                out.append(chunk)
            elif chunk.has_choices:
                out.append(ChatChunk({k: v for k, v in chunk.data.items() if k != "usage"}))
        return out
