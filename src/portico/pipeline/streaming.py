"""Relay a committed stream to the client: shape usage the way the client asked, remember what passed, cache it.

The gateway always asks upstreams for usage (to account every stream); a client that did not ask for it never
sees the usage chunk. A stream that breaks after content was sent marks the call partial and re-raises, so the
HTTP layer ends it with an explicit error event — never a clean-looking end.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from portico.cache.base import Cache
from portico.cache.replay import completion_from_chunks, encode_entry
from portico.core.errors import ProviderError
from portico.core.types import ChatChunk, ChatRequest, JSONObject, Usage

if TYPE_CHECKING:
    from portico.pipeline.gateway import Served


class StreamRelay:
    def __init__(self, request: ChatRequest, served: Served, cache: Cache | None, key: str | None) -> None:
        self._request = request
        self._served = served
        self._cache = cache
        self._key = key
        self._kept: list[JSONObject] | None = [] if cache is not None and key is not None else None

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
        await self._store()

    def _shape(self, batch: list[ChatChunk]) -> list[ChatChunk]:
        include = self._request.include_usage
        out: list[ChatChunk] = []
        for chunk in batch:
            if self._kept is not None:
                self._kept.append(chunk.data)
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

    async def _store(self) -> None:
        if self._kept is None or self._cache is None or self._key is None or self._request.cache is None:
            return
        completion = completion_from_chunks(self._kept)
        if completion is not None:
            await self._cache.set(self._key, encode_entry(completion), self._request.cache.ttl_seconds)
