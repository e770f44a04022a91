"""Exact cosine search over the stored float32 vectors, with numpy.

Why exact and in-process: this machine's Python cannot load SQLite extensions (no sqlite-vec) and its PostgreSQL
has no pgvector; an exact search needs neither and never misses a neighbour. Its cost is linear in the chunks of
one base: a base's unit-normalised matrix is cached per worker (up to `max_bytes` in all, 256 MiB by default:
~250,000 chunks of 256 dimensions), so a search is one indexed read (the base's `chunks_version`, which every
change to its chunks raises in the same transaction) plus one matrix product. A filtered search reads the
ids that pass the SQL filter (pushed down) and scores only those rows. A base too large for the cache is read from
the database on every search (slow: ~seconds per 100k chunks). bench/knowledge_bench.py measures both.
"""

from __future__ import annotations

import array
import os
import sys
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from portico.storage.knowledge_chunks import KnowledgeRepo

if TYPE_CHECKING:  # numpy (~15 MiB) is imported on the first vector search, not by a gateway that has none
    import numpy as np

    Matrix = np.ndarray[Any, np.dtype[np.float32]]
    Ids = np.ndarray[Any, np.dtype[np.int64]]
DEFAULT_CACHE_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class _Entry:
    version: int
    ids: Ids
    matrix: Matrix


def _numpy() -> Any:
    """numpy, its BLAS limited to one thread unless the environment says otherwise. A product of 10k x 256 takes
    ~1 ms on one thread; OpenBLAS's thread pool on a busy host (a gateway's workers fill the cores) swung it
    between 1 and 24 ms (measured), and each worker process is already one unit of parallelism."""
    if "numpy" not in sys.modules:
        for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(name, "1")
    import numpy

    return numpy


def unit_rows(blobs: list[bytes], dims: int) -> Matrix:
    """float32 rows scaled to length 1 (a zero vector stays zero: it matches nothing)."""
    np = _numpy()

    matrix = np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), dims).astype(np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    unit: Matrix = matrix / norms
    return unit


def to_bytes(vector: list[float]) -> bytes:
    """float32, little-endian (what `unit_rows` reads), without numpy: ingest needs no vector maths."""
    values = array.array("f", vector)
    if sys.byteorder == "big":
        values.byteswap()
    return values.tobytes()


class VectorIndex:
    def __init__(self, repo: KnowledgeRepo, *, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.repo = repo
        self.max_bytes = max_bytes
        self._cache: OrderedDict[tuple[str, int], _Entry] = OrderedDict()

    async def search(
        self, knowledge_id: str, query: list[float], where: sa.ColumnElement[bool] | None, limit: int
    ) -> list[tuple[int, float]]:
        """(chunk id, cosine similarity) of the `limit` nearest chunks passing `where`, nearest first."""
        np = _numpy()

        dims = len(query)
        q = np.asarray(query, dtype=np.float32)
        norm = float(np.linalg.norm(q))
        if norm == 0 or limit <= 0:
            return []
        q /= norm
        entry = await self._entry(knowledge_id, dims)
        if entry is None:  # too large to cache: the filter runs in SQL and the rows come with it
            rows = await self.repo.vector_rows(knowledge_id, dims, where)
            if not rows:
                return []
            ids = np.fromiter((i for i, _ in rows), dtype=np.int64, count=len(rows))
            matrix = unit_rows([v for _, v in rows], dims)
        else:
            ids, matrix = entry.ids, entry.matrix
            if where is not None:
                allowed = np.asarray(await self.repo.matching_ids(knowledge_id, where), dtype=np.int64)
                positions = np.searchsorted(ids, allowed)
                inside = positions < len(ids)
                positions, allowed = positions[inside], allowed[inside]
                positions = positions[ids[positions] == allowed]  # ids stored after the cached copy are left out
                ids, matrix = ids[positions], matrix[positions]
        if not len(ids):
            return []
        scores = matrix @ q
        k = min(limit, len(scores))
        best = np.argpartition(-scores, k - 1)[:k]
        best = best[np.argsort(-scores[best], kind="stable")]
        return [(int(ids[i]), float(scores[i])) for i in best]

    async def _entry(self, knowledge_id: str, dims: int) -> _Entry | None:
        np = _numpy()

        version = await self.repo.chunks_version(knowledge_id)
        key = (knowledge_id, dims)
        entry = self._cache.get(key)
        if entry is not None and entry.version == version:
            self._cache.move_to_end(key)
            return entry
        self._cache.pop(key, None)
        if await self.repo.count(knowledge_id, dims) * dims * 4 > self.max_bytes:
            return None
        rows = await self.repo.vector_rows(knowledge_id, dims, None)  # read after the version: at least as new
        ids = np.fromiter((i for i, _ in rows), dtype=np.int64, count=len(rows))
        matrix = unit_rows([v for _, v in rows], dims) if rows else np.zeros((0, dims), np.float32)
        entry = _Entry(version, ids, matrix)
        self._cache[key] = entry
        while sum(e.matrix.nbytes for e in self._cache.values()) > self.max_bytes and len(self._cache) > 1:
            self._cache.popitem(last=False)
        return entry

    def forget(self, knowledge_id: str) -> None:
        for key in [k for k in self._cache if k[0] == knowledge_id]:
            del self._cache[key]
