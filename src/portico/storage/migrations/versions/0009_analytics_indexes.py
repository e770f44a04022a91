"""Analytics and identity profiles: indexes for the call log's reads by identity and by thread over a time range
(`/v1/analytics/usage?identity_id=`, `/v1/threads/{id}`, `/v1/logs` filters), and the profile an identity was
last seen with (display name, email, logo URL, tags, metadata). Time ranges use `ix_request_logs_created_at`. No
index per model or provider: SQLite scanned a million records in index order for a GROUP BY (24 s against 5 s
for a plain scan), and every index is paid on every record written: the two here are partial (only records that
name an identity or a thread), so a plain call pays neither.

Revision ID: 0009_analytics_indexes
Revises: 0008_call_retrievals
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_analytics_indexes"
down_revision: str | None = "0008_call_retrievals"
branch_labels: str | None = None
depends_on: str | None = None

_INDEXES = (
    ("ix_request_logs_identity_created_at", ["identity_id", "created_at"]),
    ("ix_request_logs_thread_created_at", ["thread_id", "created_at"]),
)
_PROFILE = (
    ("display_name", sa.Text),
    ("email", sa.Text),
    ("logo_url", sa.Text),
    ("tags", sa.JSON),
    ("metadata", sa.JSON),
)


def upgrade() -> None:
    for name, columns in _INDEXES:
        named = sa.text(f"{columns[0]} IS NOT NULL")
        op.create_index(name, "request_logs", columns, sqlite_where=named, postgresql_where=named)
    for name, kind in _PROFILE:
        op.add_column("identities", sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("identities") as batch:
        for name, _ in reversed(_PROFILE):
            batch.drop_column(name)
    for name, _ in reversed(_INDEXES):
        op.drop_index(name, table_name="request_logs")
