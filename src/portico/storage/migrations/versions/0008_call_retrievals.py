"""The call log keeps what the knowledge bases returned: `request_logs.retrievals`, JSON, null when a request
named no knowledge base (ids, scores and an 80-character preview per chunk; never the whole chunk).

Revision ID: 0008_call_retrievals
Revises: 0007_knowledge
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_call_retrievals"
down_revision: str | None = "0007_knowledge"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("request_logs", sa.Column("retrievals", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("request_logs") as batch:  # SQLite drops a column by copying the table
        batch.drop_column("retrievals")
