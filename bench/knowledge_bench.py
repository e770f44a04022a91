"""Knowledge-base benchmark: ingest of 10,000 chunks and search latency (p50 / p99 at top_k 10) for each search
type, on SQLite (a file) and on PostgreSQL (a schema of its own, dropped afterwards), plus the exact vector
search's cost at 10k and 100k chunks of 256 dimensions.

    .venv/bin/python bench/knowledge_bench.py [--chunks 10000] [--queries 200] [--only sqlite|postgresql]
        [--pg postgresql://postgres@127.0.0.1:5432/test]

Embeddings are the `mock` provider's deterministic vectors (256 dimensions, computed in-process), so the figures
are the knowledge service's own cost: parse, chunk, store, index and search, not an embedding model's.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import asyncpg

from portico.core.knowledge import KnowledgeBase, SearchQuery
from portico.knowledge.service import KnowledgeService
from portico.providers import mock_embed
from portico.storage.db import Database
from portico.storage.synced import StateSync

WORDS = [f"w{i}" for i in range(5000)]
DIMS = 256


class Embedder:
    async def embed(self, model: str, texts: Sequence[str]) -> list[list[float]]:
        return [mock_embed.vector(t, DIMS) for t in texts]

    async def rerank(self, model: str, query: str, documents: Sequence[str], top_n: int) -> list[tuple[int, float]]:
        return [(i, mock_embed.relevance(query, d)) for i, d in enumerate(documents)][:top_n]


def _paragraph(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(25)) + "."


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] * 1000


async def run(url: str, chunks: int, queries: int) -> None:
    db = Database(url)
    await db.migrate()
    sync = StateSync(db, interval=60)
    service = KnowledgeService(db, sync, Embedder(), batch_size=128, ingest_concurrency=2)
    await sync.start()
    await service.start()
    rng = random.Random(7)
    await service.create_base(KnowledgeBase(key="bench", embedding_model="mock/embed", chunk_size=200, chunk_overlap=0))
    per_doc = 100
    started = time.perf_counter()
    for d in range(chunks // per_doc):
        text = "\n\n".join(_paragraph(rng) for _ in range(per_doc))
        await service.add_datasource("bench", f"doc{d}.txt", text.encode(), metadata={"year": 2000 + d % 25})
    await service.ingest.idle()
    elapsed = time.perf_counter() - started
    stored = sum(s.chunks_done for s in await service.datasources("bench"))
    print(f"  ingest: {stored} chunks in {elapsed:.1f} s ({stored / elapsed:.0f} chunks/s)")
    for search_type in ("vector_search", "keyword_search", "hybrid_search"):
        for flt in (None, {"year": {"gte": 2020}}):
            times = []
            for _ in range(queries):
                q = " ".join(rng.choice(WORDS) for _ in range(4))
                t0 = time.perf_counter()
                await service.search("bench", SearchQuery(q, top_k=10, search_type=search_type, filter=flt))
                times.append(time.perf_counter() - t0)
            label = f"{search_type}{' + filter' if flt else ''}"
            print(f"  {label:28s} p50 {_pct(times, 50):6.1f} ms   p99 {_pct(times, 99):6.1f} ms")
    base_id = service.base("bench").id  # type: ignore[union-attr]
    service.vectors.forget(base_id)
    t0 = time.perf_counter()
    await service.search("bench", SearchQuery("w1 w2", top_k=10, search_type="vector_search"))
    print(f"  vector search, cold cache (loads {stored} vectors): {(time.perf_counter() - t0) * 1000:.0f} ms")
    await service.close()
    await sync.close()
    await db.close()


def numpy_only() -> None:
    """The matrix product alone, for the size limit: 10k and 100k unit vectors of 256 dimensions (numpy as the
    gateway loads it: one BLAS thread)."""
    from portico.knowledge.vectors import _numpy

    np = _numpy()
    rng = np.random.default_rng(1)
    for n in (10_000, 100_000):
        matrix = rng.standard_normal((n, DIMS), dtype=np.float32)
        matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
        q = matrix[0]
        times = []
        for _ in range(50):
            t0 = time.perf_counter()
            scores = matrix @ q
            best = np.argpartition(-scores, 9)[:10]
            best[np.argsort(-scores[best])]
            times.append(time.perf_counter() - t0)
        size = f"{n} x {DIMS} (in memory, {matrix.nbytes / 2**20:.0f} MiB)"
        print(f"  exact cosine, {size}: p50 {statistics.median(times) * 1000:.2f} ms")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--only", choices=("sqlite", "postgresql"), help="one engine only")
    args = parser.parse_args()
    if args.only != "postgresql":
        with tempfile.TemporaryDirectory() as tmp:
            print("SQLite:")
            await run(f"sqlite:///{Path(tmp) / 'bench.db'}", args.chunks, args.queries)
    if args.only != "sqlite":
        schema = f"portico_bench_{secrets.token_hex(4)}"
        print("PostgreSQL:")
        try:
            await run(f"{args.pg}?schema={schema}", args.chunks, args.queries)
        finally:
            conn = await asyncpg.connect(args.pg)
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            await conn.close()
    print("numpy:")
    numpy_only()


if __name__ == "__main__":
    asyncio.run(main())
