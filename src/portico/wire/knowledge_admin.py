"""Admin schemas of knowledge bases (`/v1/admin/knowledge`): a base's settings, a text datasource, a search body,
and the public shapes of what they return. Field ranges follow the router's knowledge query (RQ-KB-02…07)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from portico.core.knowledge import KnowledgeBase, RerankSettings, Retrieval, SearchQuery, SearchType, Splitter

KNOWLEDGE_KEY = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
MODEL = r"^[^/\s]+/\S+$"


class RerankIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(pattern=MODEL, description="`provider/model`, e.g. `cohere/rerank-multilingual-v3.0`.")
    threshold: float | None = Field(None, ge=0, le=1, description="Keep documents scoring strictly above it.")
    top_k: int | None = Field(None, ge=1, le=100, description="Documents kept; default the base's top_k.")

    def settings(self) -> RerankSettings:
        return RerankSettings(self.model, self.threshold, self.top_k)


class KnowledgeSettings(BaseModel):
    """Every setting a PATCH may change (all optional there)."""

    model_config = ConfigDict(extra="forbid")

    embedding_model: str | None = Field(None, pattern=MODEL, description="`provider/model` of the embeddings.")
    chunk_size: int | None = Field(None, ge=1, le=100_000, description="Characters per chunk.")
    chunk_overlap: int | None = Field(None, ge=0, le=100_000, description="Characters shared by neighbouring chunks.")
    splitter: Splitter | None = None
    top_k: int | None = Field(None, ge=1, le=100)
    threshold: float | None = Field(None, ge=0, le=1)
    retrieval_type: SearchType | None = None
    rerank: RerankIn | None = None
    description: str | None = Field(None, max_length=2000)

    def changes(self) -> dict[str, Any]:
        """The fields this body sets, as `KnowledgeBase` fields (`rerank: null` removes the rerank)."""
        changes: dict[str, Any] = {}
        for name in self.model_fields_set:
            value = getattr(self, name)
            changes[name] = value.settings() if isinstance(value, RerankIn) else value
        return {k: v for k, v in changes.items() if v is not None or k == "rerank"}


class KnowledgeCreate(KnowledgeSettings):
    key: str = Field(pattern=KNOWLEDGE_KEY, description="The base's key: what requests name as `knowledge_id`.")
    embedding_model: str = Field(pattern=MODEL, description="`provider/model` of the embeddings.")

    def base(self) -> KnowledgeBase:
        return KnowledgeBase(**self.changes())


def base_public(base: KnowledgeBase, created_at: float, updated_at: float) -> dict[str, Any]:
    rerank = base.rerank
    return {
        "id": base.id,
        "key": base.key,
        "embedding_model": base.embedding_model,
        "chunk_size": base.chunk_size,
        "chunk_overlap": base.chunk_overlap,
        "splitter": base.splitter,
        "top_k": base.top_k,
        "threshold": base.threshold,
        "retrieval_type": base.retrieval_type,
        "rerank": {"model": rerank.model, "threshold": rerank.threshold, "top_k": rerank.top_k} if rerank else None,
        "description": base.description,
        "created_at": created_at,
        "updated_at": updated_at,
    }


class TextDatasource(BaseModel):
    """A datasource sent as JSON text rather than a file."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=512)
    text: str
    metadata: dict[str, Any] = Field(default_factory=dict)
    file_type: str = Field("txt", description="txt, md, html (how `text` is read).")


class SearchOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    include_vectors: bool = False
    include_metadata: bool = True
    include_scores: bool = True


class SearchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1)
    top_k: int | None = Field(None, ge=1, le=100)
    threshold: float | None = Field(None, ge=0, le=1)
    search_type: SearchType | None = None
    filter_by: dict[str, Any] | None = None
    search_options: SearchOptions = Field(default_factory=SearchOptions)
    rerank_config: RerankIn | None = None

    def query_of(self) -> SearchQuery:
        options = self.search_options
        return SearchQuery(
            text=self.query,
            top_k=self.top_k,
            threshold=self.threshold,
            search_type=self.search_type,
            filter=self.filter_by,
            include_vectors=options.include_vectors,
            include_metadata=options.include_metadata,
            include_scores=options.include_scores,
            rerank=self.rerank_config.settings() if self.rerank_config else None,
        )


def retrieval_public(found: Retrieval, options: SearchOptions) -> dict[str, Any]:
    shaped: dict[str, Any] = {"id": found.chunk_id, "text": found.text}
    if options.include_metadata:
        shaped["metadata"] = dict(found.metadata)
    if options.include_scores:
        shaped["search_score"] = found.search_score
        if found.rerank_score is not None:
            shaped["rerank_score"] = found.rerank_score
    if options.include_vectors and found.vector is not None:
        shaped["vector"] = list(found.vector)
    return shaped
