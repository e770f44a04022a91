"""Knowledge bases as the rest of the gateway sees them: what a base is, what a search asks and returns, and the
two seams between the layers.

    Embedder          the provider layer seen from the knowledge service: texts → vectors, query + texts →
                      rerank scores, each through the gateway's routing and call log (`pipeline/embedding.py`)
    KnowledgeSearch   the knowledge service seen from the request path: one search of one base by key
                      (`portico.knowledge`); the retrieval stage (`pipeline/retrieval.py`) depends on this only

Both are protocols so that neither side imports the other: the application wires the real ones together.
Precedence of a search's settings (CHECKLIST AMB-43): the request's value, then the base's stored configuration,
then the schema default; `SearchQuery` holds only what the request said (None = not said).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

SearchType = Literal["vector_search", "keyword_search", "hybrid_search"]
SEARCH_TYPES: tuple[SearchType, ...] = ("vector_search", "keyword_search", "hybrid_search")
Splitter = Literal["recursive", "sentence", "paragraph", "token"]


@dataclass(frozen=True, slots=True)
class RerankSettings:
    model: str
    """`provider/model`, e.g. `cohere/rerank-multilingual-v3.0`."""
    threshold: float | None = None
    """Only documents scoring strictly above it are kept (RQ-KB-07); None = the base's, else 0."""
    top_k: int | None = None
    """None = the base's `top_k` (AMB-43), not the schema's 10."""


@dataclass(frozen=True, slots=True)
class KnowledgeBase:
    key: str
    embedding_model: str
    """`provider/model`, resolved through the gateway's providers like a chat model."""
    chunk_size: int = 1000
    chunk_overlap: int = 100
    splitter: Splitter = "recursive"
    top_k: int = 5
    threshold: float = 0.0
    retrieval_type: SearchType = "hybrid_search"
    rerank: RerankSettings | None = None
    description: str = ""
    id: str = ""


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """One search as the request asked for it; None means "the base decides" (AMB-43)."""

    text: str
    top_k: int | None = None
    threshold: float | None = None
    search_type: SearchType | None = None
    filter: Mapping[str, Any] | None = None
    """A CMP-FILTER document already checked by `portico.knowledge.filters.parse_filter` (422 names the path)."""
    include_vectors: bool = False
    include_metadata: bool = True
    include_scores: bool = True
    rerank: RerankSettings | None = None
    agentic_model: str | None = None
    """`agentic_rag_config.model`: rewrites the query from the conversation before the search (the caller does it)."""


@dataclass(frozen=True, slots=True)
class Retrieval:
    """One chunk found. `search_score` is always set, normalised to [0, 1] (AMB-49); `rerank_score` only when a
    rerank ran. `metadata` carries at least `file_name`, `file_type` and `page_number` (None when unknown)."""

    text: str
    search_score: float
    knowledge_id: str
    chunk_id: str = ""
    datasource_id: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    rerank_score: float | None = None
    vector: tuple[float, ...] | None = None


@dataclass(frozen=True, slots=True)
class Page:
    """The text of one page of a parsed datasource (`page_number` None for formats without pages)."""

    text: str
    page_number: int | None = None


@dataclass(frozen=True, slots=True)
class ChunkText:
    """One chunk cut from a datasource, before it is embedded: `index` is its place in the datasource, and with
    the content hash it makes a re-ingest after a restart neither lose nor duplicate chunks."""

    text: str
    index: int
    page_number: int | None = None


class Embedder(Protocol):
    async def embed(self, model: str, texts: Sequence[str], input_type: str | None = None) -> list[list[float]]:
        """One vector per text, in order; raises a `ProviderError` naming the upstream's error. `input_type`
        `search_query` for a search's query: models trained asymmetrically (Cohere v3, Gemini, E5) embed a query
        and the passages it should find differently; None embeds documents."""
        ...

    async def rerank(self, model: str, query: str, documents: Sequence[str], top_n: int) -> list[tuple[int, float]]:
        """(index into `documents`, relevance in [0, 1]) for the best `top_n`, best first."""
        ...


class KnowledgeSearch(Protocol):
    async def search(self, knowledge_id: str, query: SearchQuery) -> list[Retrieval]:
        """Raises `NotFound` (code `knowledge_base_not_found`, param `knowledge_id`) for an unknown base."""
        ...
