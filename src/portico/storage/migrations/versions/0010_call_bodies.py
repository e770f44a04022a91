"""The call log keeps request and response bodies when asked: `request_logs.request_body` and `response_body`,
text, null when not kept (`logging.bodies: none`, the default). PII inputs and keys are masked before they are
stored (`observability/bodies.py`).

Revision ID: 0010_call_bodies
Revises: 0009_analytics_indexes
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_call_bodies"
down_revision: str | None = "0009_analytics_indexes"
branch_labels: str | None = None
depends_on: str | None = None

_COLUMNS = ("request_body", "response_body")


def upgrade() -> None:
    for name in _COLUMNS:
        op.add_column("request_logs", sa.Column(name, sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("request_logs") as batch:  # SQLite drops a column by copying the table
        for name in reversed(_COLUMNS):
            batch.drop_column(name)
