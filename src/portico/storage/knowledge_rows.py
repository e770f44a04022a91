"""The rows of knowledge datasources and chunks as the knowledge service handles them (`storage/knowledge_chunks.py`
reads and writes them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa


@dataclass(frozen=True, slots=True)
class Datasource:
    id: str
    knowledge_id: str
    name: str
    file_type: str
    status: str
    chunks_total: int
    chunks_done: int
    error: str | None
    metadata: dict[str, Any]
    created_at: float
    content_type: str | None = None
    content_sha256: str = ""

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "file_type": self.file_type,
            "status": self.status,
            "chunks_total": self.chunks_total,
            "chunks_done": self.chunks_done,
            "error": self.error,
            "metadata": self.metadata,
            "created_at": self.created_at,
        }


@dataclass(frozen=True, slots=True)
class ChunkRow:
    """One chunk to store: `vector` is float32 bytes of `dims` values."""

    datasource_id: str
    index: int
    page_number: int | None
    text: str
    metadata: dict[str, Any]
    content_hash: str
    dims: int
    vector: bytes


@dataclass(frozen=True, slots=True)
class StoredChunk:
    id: int
    datasource_id: str
    index: int
    page_number: int | None
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    vector: bytes | None = None


def datasource_of(row: sa.RowMapping) -> Datasource:
    return Datasource(
        id=str(row["id"]),
        knowledge_id=str(row["knowledge_id"]),
        name=str(row["name"]),
        file_type=str(row["file_type"]),
        status=str(row["status"]),
        chunks_total=int(row["chunks_total"]),
        chunks_done=int(row["chunks_done"]),
        error=row["error"],
        metadata=dict(row["metadata"] or {}),
        created_at=float(row["created_at"]),
        content_type=row["content_type"],
        content_sha256=str(row["content_sha256"]),
    )


def chunk_of(row: sa.RowMapping) -> StoredChunk:
    vector = row.get("vector")
    return StoredChunk(
        id=int(row["id"]),
        datasource_id=str(row["datasource_id"]),
        index=int(row["idx"]),
        page_number=row["page_number"],
        text=str(row["text"]),
        metadata=dict(row["metadata"] or {}),
        vector=bytes(vector) if vector is not None else None,
    )
