"""Embeddings and rerank as the providers see them: texts in, vectors out; a query and documents in, scores out.

Both are plain frozen values so that a provider's translation stays a pure function of them. `input_type` is a
hint in Cohere's vocabulary (`search_document`, `search_query`, `classification`, `clustering`); adapters whose
API has such a notion translate it, the others ignore it. Rerank scores are always in [0, 1], best first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from portico.core.types import CacheOptions, ProviderCredentials, RoutingPlan

InputType = Literal["search_document", "search_query", "classification", "clustering"]
INPUT_TYPES: tuple[InputType, ...] = ("search_document", "search_query", "classification", "clustering")


@dataclass(frozen=True, slots=True)
class EmbeddingRequest:
    texts: tuple[str, ...]
    dimensions: int | None = None
    input_type: InputType | None = None
    user: str | None = None
    credentials: ProviderCredentials | None = None
    """A routing target's own key or base URL (the same override a chat target may carry)."""


@dataclass(slots=True)
class EmbeddingResult:
    vectors: list[list[float]]
    """One vector per input text, in input order."""
    prompt_tokens: int = 0
    """What the upstream billed; 0 when its API does not say (Gemini)."""
    model: str = ""


@dataclass(frozen=True, slots=True)
class RerankRequest:
    query: str
    documents: tuple[str, ...]
    top_n: int | None = None
    credentials: ProviderCredentials | None = None


@dataclass(slots=True)
class RerankResult:
    results: list[tuple[int, float]] = field(default_factory=list)
    """(index into the documents, relevance in [0, 1]), best first."""
    tokens: int = 0


@dataclass(frozen=True, slots=True)
class EmbeddingJob:
    """One `/v1/embeddings` request as the pipeline serves it: what to embed, where, and how to route it."""

    model: str
    """`provider/model`, resolved like a chat model."""
    request: EmbeddingRequest
    routing: RoutingPlan | None = None
    """orq-style `fallbacks` / `retry` / `timeout`; None: one attempt at `model`, as for chat."""
    cache: CacheOptions | None = None
    client_key: str | None = None
