"""The storage tests' migrated databases (SQLite file, real PostgreSQL) for the prompt library's tests."""

from __future__ import annotations

from tests.storage.conftest import database, pg_schema_url

__all__ = ["database", "pg_schema_url"]
