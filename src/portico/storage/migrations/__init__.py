"""Alembic migrations of Portico's tables, run by `portico.storage.db.Database.migrate()` at startup."""
