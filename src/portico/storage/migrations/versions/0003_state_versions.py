"""A version per namespace of stored state, bumped in the same transaction as every write to it, so that every
worker and instance can tell with one SELECT which of its in-memory copies are stale.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "state_versions",
        sa.Column("namespace", sa.String(64), primary_key=True),
        sa.Column("version", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("state_versions")
