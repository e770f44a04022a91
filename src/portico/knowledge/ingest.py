"""Background ingest: a datasource's stored bytes → pages → chunks → vectors (in batches) → stored chunks.

- Bounded: at most `concurrency` datasources are ingested at once per worker; the rest wait their turn.
- Resumable: the raw upload is kept in the database (`knowledge_uploads`) until the ingest ends, and each worker
  claims a datasource with a lease renewed per stored batch. At start-up, and every `lease_seconds / 2` after,
  a worker takes over unfinished datasources whose lease expired (a graceful stop gives its leases back at once;
  a crashed worker's expire). Chunks already stored are skipped by their content hash: no loss, no duplicates.
- All or nothing: each batch is stored with the progress counter in one transaction; an embedding failure (or
  any other) marks the datasource `failed` with the error named (the upstream's, for a provider error) and
  deletes every chunk it had stored, so a failed datasource holds none.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from portico.core.errors import PorticoError
from portico.core.knowledge import ChunkText, Embedder, KnowledgeBase
from portico.knowledge.chunking import split
from portico.knowledge.parsing import parse_document
from portico.knowledge.vectors import to_bytes
from portico.storage.knowledge_chunks import KnowledgeRepo
from portico.storage.knowledge_rows import ChunkRow, Datasource

log = logging.getLogger("portico.knowledge")


def chunk_hash(chunk: ChunkText) -> str:
    """Stable across re-runs of the same datasource with the same settings; distinct for repeated text."""
    return hashlib.sha256(f"{chunk.index}\0{chunk.page_number}\0{chunk.text}".encode()).hexdigest()


def chunk_metadata(source: Datasource, chunk: ChunkText) -> dict[str, Any]:
    """The datasource's metadata plus what every chunk carries (the four keys win over same-named ones)."""
    return {
        **source.metadata,
        "file_name": source.name,
        "file_type": source.file_type,
        "page_number": chunk.page_number,
        "datasource_id": source.id,
    }


class Ingestor:
    def __init__(
        self,
        repo: KnowledgeRepo,
        base_of: Callable[[str], KnowledgeBase | None],
        embedder: Embedder,
        *,
        concurrency: int = 2,
        batch_size: int = 64,
        lease_seconds: float = 120.0,
    ) -> None:
        self.repo = repo
        self.base_of = base_of
        self.embedder = embedder
        self.batch_size = batch_size
        self.lease_seconds = lease_seconds
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._sweeper: asyncio.Task[None] | None = None

    def lease(self) -> float:
        return time.time() + self.lease_seconds

    def submit(self, datasource_id: str) -> None:
        """Ingest a datasource this worker has just claimed (stored with a lease of its own)."""
        if datasource_id not in self._tasks:
            task = asyncio.create_task(self._run(datasource_id), name=f"portico-ingest-{datasource_id}")
            self._tasks[datasource_id] = task
            task.add_done_callback(lambda _: self._tasks.pop(datasource_id, None))

    def cancel(self, datasource_id: str) -> None:
        task = self._tasks.pop(datasource_id, None)
        if task is not None:
            task.cancel()

    async def start(self) -> None:
        """Resume what is left now if the database answers (the sweeper retries otherwise); never raises."""
        try:
            await self.resume()
        except Exception as exc:
            log.warning("knowledge: could not look for datasources to resume (%s); retrying later", exc)
        self._sweeper = asyncio.create_task(self._sweep(), name="portico-ingest-sweep")

    async def resume(self) -> int:
        """Take over every unfinished datasource nobody holds; returns how many."""
        taken = 0
        now = time.time()
        for datasource_id in await self.repo.resumable(now):
            if datasource_id not in self._tasks and await self.repo.claim(datasource_id, self.lease(), now):
                log.info("knowledge: resuming the ingest of datasource %s", datasource_id)
                self.submit(datasource_id)
                taken += 1
        return taken

    async def close(self) -> None:
        """Stop every ingest and give its lease back, so the next start (of any worker) resumes it at once."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        running = list(self._tasks.items())
        for _, task in running:
            task.cancel()
        for datasource_id, task in running:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            with contextlib.suppress(Exception):
                await self.repo.set_state(datasource_id, lease_until=0.0)

    async def idle(self) -> None:
        """Wait until no ingest runs (tests, tools)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 2)
            try:
                await self.resume()
            except Exception as exc:  # a database outage: the next sweep tries again
                log.warning("knowledge: could not look for datasources to resume (%s)", exc)

    async def _run(self, datasource_id: str) -> None:
        async with self._slots:
            source = await self.repo.datasource_by_id(datasource_id)
            if source is None or source.status not in ("queued", "processing"):
                return
            base = self.base_of(source.knowledge_id)
            if base is None:  # the base was deleted meanwhile (its rows with it)
                return
            try:
                await self._ingest(base, source)
            except asyncio.CancelledError:
                raise
            except PorticoError as exc:
                log.warning("knowledge: ingest of %s (%s) failed: %s", source.id, source.name, exc.message)
                await self.repo.finish(source.id, error=_describe(exc))
            except Exception as exc:
                log.exception("knowledge: ingest of %s (%s) failed", source.id, source.name)
                await self.repo.finish(source.id, error=f"{type(exc).__name__}: {exc}"[:500])

    async def _ingest(self, base: KnowledgeBase, source: Datasource) -> None:
        content = await self.repo.upload(source.id)
        if content is None:
            raise RuntimeError("the raw upload is missing")
        await self.repo.set_state(source.id, status="processing", lease_until=self.lease())
        pieces = await asyncio.to_thread(_prepare, base, source, content)  # CPU work: off the event loop
        await self.repo.set_state(source.id, chunks_total=len(pieces))
        stored = await self.repo.stored_hashes(source.id)
        todo = [(piece, h) for piece, h in pieces if h not in stored]
        for start in range(0, len(todo), self.batch_size):
            batch = todo[start : start + self.batch_size]
            vectors = await self.embedder.embed(base.embedding_model, [piece.text for piece, _ in batch])
            rows = _rows(source, batch, vectors)
            if not await self.repo.store_batch(source.knowledge_id, rows, lease_until=self.lease()):
                current = await self.repo.datasource_by_id(source.id)
                if current is None or current.status not in ("queued", "processing"):
                    return  # deleted (or finished by another worker) meanwhile
        await self.repo.finish(source.id, error=None)


def _prepare(base: KnowledgeBase, source: Datasource, content: bytes) -> list[tuple[ChunkText, str]]:
    """Parse, split and hash: every chunk of the datasource with its content hash."""
    pages = parse_document(source.name, content, source.content_type)
    pieces = split(pages, size=base.chunk_size, overlap=base.chunk_overlap, splitter=base.splitter)
    return [(piece, chunk_hash(piece)) for piece in pieces]


def _rows(source: Datasource, batch: Sequence[tuple[ChunkText, str]], vectors: list[list[float]]) -> list[ChunkRow]:
    if len(vectors) != len(batch):
        raise RuntimeError(f"the embedding model returned {len(vectors)} vectors for {len(batch)} texts")
    dims = {len(v) for v in vectors}
    if len(dims) != 1 or 0 in dims:
        raise RuntimeError("the embedding model returned vectors of differing or zero length")
    return [
        ChunkRow(
            source.id, piece.index, piece.page_number, piece.text, chunk_metadata(source, piece), h, len(v), to_bytes(v)
        )
        for (piece, h), v in zip(batch, vectors, strict=True)
    ]


def _describe(exc: PorticoError) -> str:
    provider = getattr(exc, "provider", None)
    status = getattr(exc, "upstream_status", None)
    where = f" (provider {provider}" + (f", upstream status {status}" if status else "") + ")" if provider else ""
    return f"{exc.message}{where}"[:500]
