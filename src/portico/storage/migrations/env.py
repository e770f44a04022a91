"""Alembic's entry point. Portico runs it only through `Database.migrate()`, which hands over an open connection."""

from __future__ import annotations

from alembic import context

from portico.storage.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run Portico's migrations with portico.storage.db.Database.migrate()")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
