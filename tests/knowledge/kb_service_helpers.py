"""Shared by the knowledge-service tests: an `Embedder` over the mock provider's deterministic vectors and rerank
scores (the same functions the `mock` provider serves over HTTP), which counts its calls and can be made to fail."""

from __future__ import annotations

from collections.abc import Sequence

from portico.core.errors import UpstreamHTTPError
from portico.providers import mock_embed


class MockEmbedder:
    def __init__(self, dims: int = 64) -> None:
        self.dims = dims
        self.embedded = 0
        self.calls = 0
        self.fail_after: int | None = None
        """Fail every call once this many texts were embedded (an upstream 503)."""
        self.reranks: list[tuple[str, str, int]] = []
        self.input_types: list[str | None] = []

    async def embed(self, model: str, texts: Sequence[str], input_type: str | None = None) -> list[list[float]]:
        self.calls += 1
        self.input_types.append(input_type)
        if self.fail_after is not None and self.embedded + len(texts) > self.fail_after:
            raise UpstreamHTTPError("upstream said: model overloaded", provider="mock", upstream_status=503)
        self.embedded += len(texts)
        return [mock_embed.vector(text, self.dims) for text in texts]

    async def rerank(self, model: str, query: str, documents: Sequence[str], top_n: int) -> list[tuple[int, float]]:
        self.reranks.append((model, query, top_n))
        scored = sorted(
            ((i, mock_embed.relevance(query, d)) for i, d in enumerate(documents)), key=lambda item: -item[1]
        )
        return scored[:top_n]
