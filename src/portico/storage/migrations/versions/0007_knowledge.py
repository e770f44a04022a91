"""Knowledge bases: bases (settings as JSON), datasources with progress, raw uploads until ingested, chunks with
their float32 vectors; keyword indexes: FTS5 (SQLite, external content + triggers) or a stored tsvector with a
GIN index (PostgreSQL).

Revision ID: 0007_knowledge
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007_knowledge"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None

_FTS_SQLITE = (
    "CREATE VIRTUAL TABLE knowledge_chunks_fts USING fts5(text, content='knowledge_chunks', content_rowid='id')",
    "CREATE TRIGGER knowledge_chunks_ai AFTER INSERT ON knowledge_chunks BEGIN "
    "INSERT INTO knowledge_chunks_fts(rowid, text) VALUES (new.id, new.text); END",
    "CREATE TRIGGER knowledge_chunks_ad AFTER DELETE ON knowledge_chunks BEGIN "
    "INSERT INTO knowledge_chunks_fts(knowledge_chunks_fts, rowid, text) VALUES ('delete', old.id, old.text); END",
    "CREATE TRIGGER knowledge_chunks_au AFTER UPDATE OF text ON knowledge_chunks BEGIN "
    "INSERT INTO knowledge_chunks_fts(knowledge_chunks_fts, rowid, text) VALUES ('delete', old.id, old.text); "
    "INSERT INTO knowledge_chunks_fts(rowid, text) VALUES (new.id, new.text); END",
)

_FTS_POSTGRES = (
    "ALTER TABLE knowledge_chunks ADD COLUMN tsv tsvector "
    "GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, text)) STORED",
    "CREATE INDEX ix_knowledge_chunks_tsv ON knowledge_chunks USING gin (tsv)",
)


def upgrade() -> None:
    op.create_table(
        "knowledge_bases",
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("id", sa.String(64), nullable=False, unique=True),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("chunks_version", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "knowledge_datasources",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("knowledge_id", sa.String(64), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("file_type", sa.String(32), nullable=False),
        sa.Column("content_type", sa.Text),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("chunks_total", sa.Integer, nullable=False),
        sa.Column("chunks_done", sa.Integer, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("lease_until", sa.Float, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.UniqueConstraint("knowledge_id", "content_sha256", name="uq_knowledge_datasources_content"),
    )
    op.create_index("ix_knowledge_datasources_status", "knowledge_datasources", ["status"])
    op.create_table(
        "knowledge_uploads",
        sa.Column("datasource_id", sa.String(64), primary_key=True),
        sa.Column("content", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "knowledge_chunks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("knowledge_id", sa.String(64), nullable=False),
        sa.Column("datasource_id", sa.String(64), nullable=False),
        sa.Column("idx", sa.Integer, nullable=False),
        sa.Column("page_number", sa.Integer),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("metadata", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("dims", sa.Integer, nullable=False),
        sa.Column("vector", sa.LargeBinary, nullable=False),
        sa.UniqueConstraint("datasource_id", "content_hash", name="uq_knowledge_chunks_content"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_knowledge_chunks_knowledge_id", "knowledge_chunks", ["knowledge_id"])
    if op.get_bind().dialect.name == "sqlite":
        for statement in _FTS_SQLITE:
            op.execute(statement)
    else:
        for statement in _FTS_POSTGRES:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE knowledge_chunks_fts")  # its triggers go with knowledge_chunks
    op.drop_table("knowledge_chunks")
    op.drop_table("knowledge_uploads")
    op.drop_table("knowledge_datasources")
    op.drop_table("knowledge_bases")
