"""`KnowledgeService`: the knowledge bases of one gateway, as the admin API and the request path use them.

Bases' settings are held in memory and kept in step across workers (`storage/knowledge.py`); datasources and
chunks are read from the database; ingest runs in the background (`ingest.py`); search is `search.py`. The
request path calls `search()` only (`core.knowledge.KnowledgeSearch`); a base is named by its key or its id.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import time
from collections.abc import Mapping
from typing import Any

from portico.core.ids import time_ordered_id
from portico.core.knowledge import Embedder, KnowledgeBase, Retrieval, SearchQuery
from portico.knowledge.ingest import Ingestor
from portico.knowledge.parsing import detect_file_type, parse_document
from portico.knowledge.search import Searcher
from portico.knowledge.vectors import DEFAULT_CACHE_BYTES, VectorIndex
from portico.storage.db import Database
from portico.storage.knowledge import KnowledgeBaseStore, StoredBase, knowledge_base_not_found
from portico.storage.knowledge_chunks import KnowledgeRepo
from portico.storage.knowledge_rows import Datasource, StoredChunk
from portico.storage.synced import StateSync


class KnowledgeService:
    def __init__(
        self,
        db: Database,
        sync: StateSync,
        embedder: Embedder,
        *,
        ingest_concurrency: int = 2,
        batch_size: int = 64,
        lease_seconds: float = 120.0,
        vector_cache_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        self.bases = KnowledgeBaseStore(sync)
        self.repo = KnowledgeRepo(db)
        self.vectors = VectorIndex(self.repo, max_bytes=vector_cache_bytes)
        self.searcher = Searcher(self.repo, self.vectors, embedder)
        self.ingest = Ingestor(
            self.repo,
            self._base_by_id,
            embedder,
            concurrency=ingest_concurrency,
            batch_size=batch_size,
            lease_seconds=lease_seconds,
        )

    async def start(self) -> None:
        """Resume the ingests a previous run left unfinished (the state sync must have loaded the bases)."""
        await self.ingest.start()

    async def close(self) -> None:
        await self.ingest.close()

    # --- bases -------------------------------------------------------------------------------------------------

    def base(self, knowledge_id: str) -> KnowledgeBase | None:
        """By key, else by id; a dict read."""
        stored = self.bases.get(knowledge_id)
        if stored is not None:
            return stored.base
        return self._base_by_id(knowledge_id)

    def _base_by_id(self, base_id: str) -> KnowledgeBase | None:
        return next((s.base for s in self.bases.all() if s.base.id == base_id), None)

    async def require(self, key: str) -> StoredBase:
        stored = await self.bases.find(key)
        if stored is None:
            raise knowledge_base_not_found(key)
        return stored

    async def create_base(self, base: KnowledgeBase) -> StoredBase:
        if not base.id:
            base = dataclasses.replace(base, id=f"knowledge_{time_ordered_id()}")
        return await self.bases.create(base)

    async def update_base(self, base: KnowledgeBase) -> StoredBase:
        return await self.bases.update(base)

    async def delete_base(self, key: str) -> bool:
        stored = await self.bases.find(key)
        if stored is None:
            return False
        base_id = stored.base.id
        for source in await self.repo.datasources(base_id):
            self.ingest.cancel(source.id)
        deleted = await self.bases.delete(key, self.repo.delete_base_rows(base_id))
        self.vectors.forget(base_id)
        return deleted

    # --- datasources -------------------------------------------------------------------------------------------

    async def add_datasource(
        self,
        key: str,
        name: str,
        content: bytes,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> tuple[Datasource, bool]:
        """Queue a document for ingest; (datasource, True) when new, (the existing one, False) when the base
        already holds these bytes. Unsupported (415), empty (400) or unreadable documents are refused here, before
        anything is stored (the parse is repeated in the background ingest, which needs no upload-time state)."""
        stored = await self.require(key)
        file_type = detect_file_type(name, content_type)
        sha256 = await asyncio.to_thread(_checked_digest, name, content, content_type)
        now = time.time()
        source = Datasource(
            id=f"datasource_{time_ordered_id()}",
            knowledge_id=stored.base.id,
            name=name,
            file_type=file_type,
            status="queued",
            chunks_total=0,
            chunks_done=0,
            error=None,
            metadata=dict(metadata or {}),
            created_at=now,
            content_type=content_type,
            content_sha256=sha256,
        )
        source, created = await self.repo.add_datasource(source, content, self.ingest.lease())
        if created:
            self.ingest.submit(source.id)
        return source, created

    async def datasources(self, key: str) -> list[Datasource]:
        return await self.repo.datasources((await self.require(key)).base.id)

    async def datasource(self, key: str, datasource_id: str) -> Datasource | None:
        return await self.repo.datasource((await self.require(key)).base.id, datasource_id)

    async def delete_datasource(self, key: str, datasource_id: str) -> bool:
        base_id = (await self.require(key)).base.id
        self.ingest.cancel(datasource_id)
        return await self.repo.delete_datasource(base_id, datasource_id)

    async def chunks(self, key: str, datasource_id: str, limit: int, offset: int) -> list[StoredChunk] | None:
        """None when the datasource is not in the base."""
        if await self.datasource(key, datasource_id) is None:
            return None
        return await self.repo.list_chunks(datasource_id, limit, offset)

    async def delete_chunk(self, key: str, datasource_id: str, chunk_id: int) -> bool:
        if await self.datasource(key, datasource_id) is None:
            return False
        return await self.repo.delete_chunk(datasource_id, chunk_id)

    # --- search --------------------------------------------------------------------------------------------------

    async def search(self, knowledge_id: str, query: SearchQuery) -> list[Retrieval]:
        """`core.knowledge.KnowledgeSearch`: NotFound (`knowledge_base_not_found`, param `knowledge_id`)."""
        base = self.base(knowledge_id)
        if base is None:
            stored = await self.bases.find(knowledge_id)  # created through another worker since the last poll
            if stored is None:
                raise knowledge_base_not_found(knowledge_id)
            base = stored.base
        return await self.searcher.search(base, query)


def _checked_digest(name: str, content: bytes, content_type: str | None) -> str:
    """The sha256 of a document that parses (CPU work for a large file: callers run it in a thread)."""
    parse_document(name, content, content_type)
    return hashlib.sha256(content).hexdigest()
