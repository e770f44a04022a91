"""One search of one knowledge base: settings resolved, candidates ranked, threshold, top_k, rerank, shaping.

Settings (CHECKLIST AMB-43): the request's value, else the base's stored setting, else the schema default. The
rerank model is the request's `rerank_config`, else the base's; its `threshold` the request's, else the base's,
else 0 (kept only when strictly greater, RQ-KB-07); its `top_k` the request's, else the base's rerank top_k, else
the search's top_k. Rerank reorders the `top_k` chunks the search found (it never adds any).

`search_score` is in [0, 1] for every type (AMB-49), and the threshold applies to it (a chunk scoring exactly the
threshold is kept):
- vector: cosine similarity, negative values clamped to 0;
- keyword: the engine's relevance r (FTS5 bm25 magnitude on SQLite, ts_rank_cd on PostgreSQL) as r / (1 + r);
- hybrid: reciprocal rank fusion (k = 60) of the vector and keyword rankings, each taken to `pool` candidates,
  Σ 1 / (60 + rank), divided by its maximum 2 / 61 (first in both lists scores 1.0; first in one list only, 0.5).
  The fused score is the ranking, so it is the score reported, not the cosine.
"""

from __future__ import annotations

import array
import asyncio
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace

import sqlalchemy as sa

from portico.core.knowledge import Embedder, KnowledgeBase, RerankSettings, Retrieval, SearchQuery, SearchType
from portico.knowledge.filters import parse_filter, to_sql
from portico.knowledge.vectors import VectorIndex
from portico.storage.knowledge_chunks import KnowledgeRepo
from portico.storage.tables import knowledge_chunks

RRF_K = 60
_MIN_POOL = 50
_MAX_POOL = 200


@dataclass(frozen=True, slots=True)
class Resolved:
    top_k: int
    threshold: float
    search_type: SearchType
    rerank: RerankSettings | None


def resolve(base: KnowledgeBase, query: SearchQuery) -> Resolved:
    top_k = query.top_k if query.top_k is not None else base.top_k
    threshold = query.threshold if query.threshold is not None else base.threshold
    rerank = query.rerank or base.rerank
    if rerank is not None:
        stored = base.rerank
        rerank = replace(
            rerank,
            threshold=_first(rerank.threshold, stored.threshold if stored else None, 0.0),
            top_k=int(_first(rerank.top_k, stored.top_k if stored else None, top_k)),
        )
    return Resolved(top_k, threshold, query.search_type or base.retrieval_type, rerank)


def _first(*values: float | None) -> float:
    return next(v for v in values if v is not None)


class Searcher:
    def __init__(self, repo: KnowledgeRepo, vectors: VectorIndex, embedder: Embedder) -> None:
        self.repo = repo
        self.vectors = vectors
        self.embedder = embedder

    async def search(self, base: KnowledgeBase, query: SearchQuery) -> list[Retrieval]:
        settings = resolve(base, query)
        flt = parse_filter(query.filter)
        where = to_sql(flt, knowledge_chunks.c.metadata, self.repo.db.backend) if flt.groups else None
        ranked = await self._rank(base, query.text, settings, where)
        ranked = [(i, round(min(1.0, max(0.0, s)), 6)) for i, s in ranked]  # the score reported is the one compared
        ranked = [(i, s) for i, s in ranked if s >= settings.threshold][: settings.top_k]
        rows = await self.repo.chunks_by_id([i for i, _ in ranked], with_vectors=query.include_vectors)
        found = [
            Retrieval(
                text=rows[i].text,
                search_score=score,
                knowledge_id=base.key,
                chunk_id=str(i),
                datasource_id=rows[i].datasource_id,
                metadata=rows[i].metadata if query.include_metadata else {},
                vector=_vector(rows[i].vector) if query.include_vectors else None,
            )
            for i, score in ranked
            if i in rows  # deleted between the ranking and this read
        ]
        if settings.rerank is not None and found:
            found = await self._rerank(query.text, found, settings.rerank)
        return found

    async def _rank(
        self, base: KnowledgeBase, text: str, settings: Resolved, where: sa.ColumnElement[bool] | None
    ) -> list[tuple[int, float]]:
        if settings.search_type == "keyword_search":
            return await self.repo.keyword(base.id, text, where if where is not None else sa.true(), settings.top_k)
        vector = (await self.embedder.embed(base.embedding_model, [text], "search_query"))[0]
        if settings.search_type == "vector_search":
            return [(i, max(0.0, s)) for i, s in await self.vectors.search(base.id, vector, where, settings.top_k)]
        pool = min(max(4 * settings.top_k, _MIN_POOL), _MAX_POOL)
        by_vector, by_keyword = await asyncio.gather(  # two independent reads: one round trip's wait, not two
            self.vectors.search(base.id, vector, where, pool),
            self.repo.keyword(base.id, text, where if where is not None else sa.true(), pool),
        )
        return fuse([[i for i, _ in by_vector], [i for i, _ in by_keyword]])

    async def _rerank(self, text: str, found: list[Retrieval], rerank: RerankSettings) -> list[Retrieval]:
        top_n = min(rerank.top_k or len(found), len(found))
        scores = await self.embedder.rerank(rerank.model, text, [r.text for r in found], top_n)
        threshold = rerank.threshold or 0.0
        return [
            replace(found[index], rerank_score=round(score, 6))
            for index, score in scores
            if 0 <= index < len(found) and score > threshold
        ][:top_n]


def fuse(rankings: Sequence[Sequence[int]]) -> list[tuple[int, float]]:
    """Reciprocal rank fusion: Σ 1 / (RRF_K + rank) over the rankings (rank from 1), normalised so that first in
    every ranking scores 1.0; ties keep the order of first appearance."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, chunk_id in enumerate(ranking, start=1):
            fused[chunk_id] = fused.get(chunk_id, 0.0) + 1.0 / (RRF_K + rank)
    best = len(rankings) / (RRF_K + 1)
    return sorted(((i, s / best) for i, s in fused.items()), key=lambda item: -item[1])


def _vector(blob: bytes | None) -> tuple[float, ...] | None:
    if blob is None:
        return None
    values = array.array("f", blob)
    if sys.byteorder == "big":
        values.byteswap()
    return tuple(values)
