"""Virtual keys (secrets Fernet-encrypted) and stored routing configs, referenced by Portkey clients by id.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "virtual_keys",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("provider", sa.Text, nullable=False),
        sa.Column("encrypted_key", sa.Text),
        sa.Column("base_url", sa.Text),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "routing_configs",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("config", sa.JSON, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("routing_configs")
    op.drop_table("virtual_keys")
