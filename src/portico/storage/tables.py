"""SQLAlchemy tables: the call log (`request_logs`), the end users it names (`identities`), the vault
(`virtual_keys`, `routing_configs`) and the per-namespace versions that keep workers in step (`state_versions`).

The schema is owned by the Alembic migrations in `storage/migrations/`; a change here needs a new revision there.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

request_logs = sa.Table(
    "request_logs",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("request_id", sa.Text, nullable=False),
    sa.Column("trace_id", sa.Text),
    sa.Column("span_id", sa.Text),
    sa.Column("parent_span_id", sa.Text),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("dialect", sa.String(16), nullable=False),
    sa.Column("client_key_hash", sa.String(16)),
    sa.Column("provider", sa.Text),
    sa.Column("model", sa.Text),
    sa.Column("requested_model", sa.Text),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("error_type", sa.Text),
    sa.Column("error_message", sa.Text),
    sa.Column("stream", sa.Boolean, nullable=False),
    sa.Column("partial", sa.Boolean, nullable=False),
    sa.Column("cache_status", sa.Text),
    sa.Column("prompt_tokens", sa.Integer, nullable=False),
    sa.Column("completion_tokens", sa.Integer, nullable=False),
    sa.Column("total_tokens", sa.Integer, nullable=False),
    sa.Column("cached_tokens", sa.Integer, nullable=False),
    sa.Column("reasoning_tokens", sa.Integer, nullable=False),
    sa.Column("cost_usd", sa.Float),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("overhead_ms", sa.Float, nullable=False),
    sa.Column("ttft_ms", sa.Float),
    sa.Column("attempts", sa.JSON, nullable=False),
    sa.Column("metadata", sa.JSON, nullable=False),
    sa.Column("identity_id", sa.Text),
    sa.Column("thread_id", sa.Text),
    sa.Index("ix_request_logs_created_at", "created_at"),
    sa.Index("ix_request_logs_trace_id", "trace_id"),
    sa.Index("ix_request_logs_request_id", "request_id"),
)

identities = sa.Table(
    "identities",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("request_count", sa.Integer, nullable=False),
)

virtual_keys = sa.Table(
    "virtual_keys",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("provider", sa.Text, nullable=False),
    sa.Column("encrypted_key", sa.Text),
    sa.Column("base_url", sa.Text),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

routing_configs = sa.Table(
    "routing_configs",
    metadata,
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("config", sa.JSON, nullable=False),
)

state_versions = sa.Table(  # one row per namespace of stored state (storage/synced.py), bumped with every write
    "state_versions",
    metadata,
    sa.Column("namespace", sa.String(64), primary_key=True),
    sa.Column("version", sa.BigInteger, nullable=False),
)

prompt_versions = sa.Table(  # every version of every stored prompt (storage/prompts.py); a version never changes
    "prompt_versions",
    metadata,
    sa.Column("prompt_id", sa.String(128), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("content", sa.JSON, nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.PrimaryKeyConstraint("prompt_id", "version", name="pk_prompt_versions"),
)

deployment_versions = sa.Table(  # every version of every deployment (storage/deployments.py); a version never changes
    "deployment_versions",
    metadata,
    sa.Column("key", sa.String(128), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("content", sa.JSON, nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.PrimaryKeyConstraint("key", "version", name="pk_deployment_versions"),
)

guardrails = sa.Table(  # custom guardrails stored through the admin API (storage/guardrails.py): id → its spec
    "guardrails",
    metadata,
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("spec", sa.JSON, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)
