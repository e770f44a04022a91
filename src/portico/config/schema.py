"""The typed model of Portico's YAML configuration; `portico check-config` and startup validate against it.

Every section has a default so that an empty file (or no file) runs the gateway on embedded defaults.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
"""URL schemes that name a Redis (the cache, the shared routing state, state-sync notifications): one list for the
config check and every place that picks a Redis from the config."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    workers: int = Field(1, ge=1, le=256)
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024, description="Larger request bodies get 413.")
    header_timeout_seconds: float = Field(
        10.0, gt=0, le=3600, description="A request head (line and headers) must arrive within this; else 408."
    )
    body_timeout_seconds: float = Field(
        30.0, gt=0, le=3600, description="A request body must arrive within this after its head; else 408."
    )
    keepalive_timeout_seconds: int = Field(30, ge=1, le=3600, description="Idle keep-alive connections close after.")
    shutdown_grace_seconds: float = Field(
        30.0,
        ge=0,
        le=3600,
        description="On SIGTERM: how long in-flight requests and streams may take to finish before they are cut.",
    )
    max_connections: int | None = Field(
        None,
        ge=1,
        description="Open connections per worker; above it the oldest ones with no request in progress are closed. "
        "Default: three quarters of the process's open-file limit.",
    )


class AuthConfig(_Section):
    keys: list[str] = Field(default_factory=list, description="Client keys; an empty list leaves the gateway open.")
    keyed_routes: list[Literal["/v1/models", "/metrics", "/openapi.json", "/docs", "/redoc"]] = Field(
        default_factory=list,
        description="Routes that are open by default (they name models and counts, no secrets) and should take a "
        "gateway key too when `keys` is set. Admin routes and /v1/logs always do; /health never does.",
    )


class AdapterOptions(BaseModel):
    """The options one adapter takes beyond `ProviderConfig`'s common keys: each adapter (plugins too) declares a
    subclass, typed with defaults, so a misspelt key is an error with its path, never silently ignored."""

    model_config = ConfigDict(extra="forbid")


class ProviderConfig(BaseModel):
    """One upstream. `type` names the adapter (defaults to the entry's own name); the adapter's declared options
    (`AdapterOptions`) may follow, checked against the adapter by `providers.registry.check_provider`."""

    model_config = ConfigDict(extra="allow")

    type: str | None = None
    api_key: str | None = None
    base_url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    models: list[str] = Field(default_factory=list, description="Models listed by GET /v1/models.")
    timeout: float = Field(600.0, gt=0, description="Seconds one upstream call may take in all (streams too).")
    connect_timeout: float = Field(10.0, gt=0, description="Seconds to open the connection (TCP and TLS).")
    first_token_timeout: float | None = Field(
        None, gt=0, description="Streams: seconds from sending to the first token; default: timeout."
    )
    idle_timeout: float | None = Field(
        None, gt=0, description="Streams: longest silence between two reads; default: 60 (at most timeout)."
    )
    max_response_bytes: int = Field(
        32 * 1024 * 1024, ge=1024, description="A larger answer body fails the attempt (502), unread."
    )
    max_event_bytes: int = Field(
        32 * 1024 * 1024, ge=1024, description="A larger stream event fails the attempt (502) while it grows."
    )

    @property
    def options(self) -> dict[str, Any]:
        """Adapter-specific keys (api_version, region, default_max_tokens, ...)."""
        return dict(self.model_extra or {})


class StorageConfig(_Section):
    url: str | None = Field(None, description="sqlite:///path or postgresql://...; default: $PORTICO_HOME/portico.db")
    sync_interval_seconds: float = Field(
        0.5, gt=0, le=60, description="How often each process polls for stored objects changed elsewhere."
    )
    notify_url: str | None = Field(
        None, description="redis://... to announce stored-object changes; default: routing.state_url, then cache.url"
    )
    connect_timeout: float = Field(5.0, gt=0, description="Seconds to open a database connection.")
    statement_timeout: float = Field(
        10.0, gt=0, description="Seconds one statement may take (client and, on PostgreSQL, server side)."
    )


class KnowledgeConfig(_Section):
    """Knowledge bases (the admin API under /v1/admin/knowledge, searched by requests' `knowledge_bases`)."""

    max_upload_bytes: int = Field(
        25 * 1024 * 1024, ge=1024, description="Larger datasource uploads get 413; nothing is stored."
    )
    ingest_concurrency: int = Field(2, ge=1, le=64, description="Datasources each worker ingests at once.")
    embed_batch_size: int = Field(64, ge=1, le=2048, description="Chunks per embedding call (and per stored batch).")
    vector_cache_bytes: int = Field(
        256 * 1024 * 1024,
        ge=0,
        description="Per worker: vectors kept in memory for exact search; a larger base is read per search.",
    )


class CacheConfig(_Section):
    url: str = "memory://"
    max_bytes: int = Field(64 * 1024 * 1024, ge=1024, description="Byte bound of the in-process cache (LRU).")


class RoutingConfig(_Section):
    cooldown_seconds: float = Field(30.0, ge=0, description="How long a failing target is skipped.")
    failure_threshold: int = Field(3, ge=1, description="Consecutive failures that cool a target down.")
    max_retry_after_seconds: float = Field(30.0, ge=0, description="Cap on an upstream's Retry-After.")
    state_url: str | None = Field(None, description="redis://... to share health state; default: cache.url")


class PortkeyConfig(_Section):
    custom_host_allowlist: list[str] = Field(
        default_factory=list, description="Base URLs (prefixes) that x-portkey-custom-host may point at."
    )
    configs: dict[str, dict[str, Any]] = Field(default_factory=dict, description="Named x-portkey-config bodies.")


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class LoggingConfig(_Section):
    level: str = Field("INFO", description="DEBUG, INFO, WARNING, ERROR or CRITICAL (any case).")
    access_log: bool = Field(True, description="One JSON line per request: method, path, status, latency, id.")
    request_log: bool = Field(True, description="Record every call in storage (off the hot path).")
    queue_size: int = Field(10000, ge=1)
    write_timeout: float = Field(15.0, gt=0, description="Seconds a call-log batch may take; then it is retried.")
    retry_max_seconds: float = Field(5.0, gt=0, description="Longest wait between writes while the database is away.")
    spool_dir: str | None = Field(None, description="Where records wait while the database is away (home/spool).")
    spool_max_bytes: int = Field(256 * 1024 * 1024, ge=0, description="Size bound of the spool; 0 turns it off.")
    spool_after_seconds: float = Field(1.0, ge=0, description="How long records wait in memory before the spool.")
    bodies: Literal["none", "truncated", "full"] = Field(
        "none",
        description="Request and response bodies in the call log: none, the first body_max_bytes (truncated) or full;"
        " a request may choose with `x-portico-log-bodies`. PII inputs and keys are always masked.",
    )
    body_max_bytes: int = Field(16384, gt=0, description="Bytes of each body kept when bodies is truncated.")

    @field_validator("level")
    @classmethod
    def _level_is_a_level(cls, level: str) -> str:
        if level.upper() not in LOG_LEVELS:
            raise ValueError(f"{level!r} is not a log level (use one of {', '.join(LOG_LEVELS)})")
        return level.upper()


class ModelPrice(_Section):
    """USD per 1M tokens (or per hour with the throughput it is spread over); see the README's "Cost"."""

    input: float | None = Field(None, ge=0, description="Uncached input (prompt) tokens.")
    output: float | None = Field(None, ge=0, description="Output (completion) tokens.")
    cached_input: float | None = Field(None, ge=0, description="Input read from the provider's cache; default: input.")
    cache_write: float | None = Field(None, ge=0, description="Input written to the provider's cache; default: input.")
    reasoning: float | None = Field(None, ge=0, description="Reasoning tokens; default: output.")
    per_hour: float | None = Field(None, ge=0, description="A self-hosted server's price per hour.")
    tokens_per_hour: int | None = Field(
        None, gt=0, description="With per_hour: the tokens (in and out) that server serves per hour at your load."
    )

    @model_validator(mode="after")
    def _complete(self) -> ModelPrice:
        if self.per_hour is not None:
            if self.tokens_per_hour is None:
                raise ValueError(
                    "per_hour needs tokens_per_hour (the tokens that server serves in an hour at your load): a "
                    "request's share of an hour cannot be told from its latency, so it is apportioned by tokens"
                )
            if self.input is not None or self.output is not None:
                raise ValueError("give either per_hour with tokens_per_hour, or input and output, not both")
        elif self.input is None or self.output is None:
            raise ValueError("a price needs input and output (USD per 1M tokens), or per_hour and tokens_per_hour")
        return self


class PricingConfig(_Section):
    builtin: bool = Field(True, description="Use the price table shipped with Portico under the configured prices.")
    models: dict[str, ModelPrice] = Field(
        default_factory=dict,
        description="'provider/model' → price; provider is a providers entry's name or its adapter type.",
    )

    @field_validator("models")
    @classmethod
    def _addressed(cls, models: dict[str, ModelPrice]) -> dict[str, ModelPrice]:
        for address in models:
            provider, _, model = address.partition("/")
            if not provider or not model:
                raise ValueError(f"price key {address!r} must be 'provider/model'")
        return models


class TelemetryConfig(_Section):
    """OpenTelemetry traces over OTLP/HTTP (protobuf); needs the `otel` extra. See the README's "Traces"."""

    enabled: bool | None = Field(
        None,
        description="None: on when OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT is set "
        "(and OTEL_SDK_DISABLED is not true).",
    )
    endpoint: str | None = Field(
        None, description="OTLP/HTTP traces URL (http://host:4318/v1/traces); default: the OTEL_* variables."
    )
    headers: dict[str, str] = Field(default_factory=dict, description="Sent with every export (e.g. an API key).")
    service_name: str = Field("portico", min_length=1, description="The spans' service.name (OTEL_SERVICE_NAME wins).")
    export_delay_ms: int = Field(1000, ge=1, le=60000, description="Longest time a span waits before export.")


class HealthConfig(_Section):
    """How `/health` learns about the dependencies: background probes, never a wait in the request."""

    probe_interval_seconds: float = Field(
        5.0, ge=0.2, le=300, description="Each dependency (storage, Redis, state sync) is probed this often."
    )
    probe_timeout_seconds: float = Field(
        2.0, gt=0, le=60, description="A probe without an answer by then marks its dependency down."
    )


class MetricsConfig(_Section):
    require_key: bool = Field(False, description="GET /metrics asks for a gateway key, like the admin API.")


class ModerationConfig(_Section):
    """A moderation provider for the built-in `orq_sexual_moderation` / `orq_harmful_moderation` (OpenAI's
    `/moderations` wire format); without one they use the local word lists."""

    provider: str = Field(description="A configured provider that serves /moderations (openai, azure, ...).")
    model: str = "omni-moderation-latest"
    threshold: float = Field(0.5, gt=0, le=1, description="A category scoring this much fails, flagged or not.")
    timeout_ms: float = Field(5000, gt=0, le=60000)
    on_error: Literal["deny", "allow"] = Field("deny", description="deny: fail closed; allow: fail open.")


class GuardrailsConfig(_Section):
    moderation: ModerationConfig | None = None


class Settings(_Section):
    server: ServerConfig = Field(default_factory=ServerConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    knowledge: KnowledgeConfig = Field(default_factory=KnowledgeConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    portkey: PortkeyConfig = Field(default_factory=PortkeyConfig)
    guardrails: GuardrailsConfig = Field(default_factory=GuardrailsConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    pricing: PricingConfig = Field(default_factory=PricingConfig)
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)

    @field_validator("providers")
    @classmethod
    def _names_have_no_slash(cls, providers: dict[str, ProviderConfig]) -> dict[str, ProviderConfig]:
        for name in providers:
            if not name or "/" in name:
                raise ValueError(f"provider name {name!r} must be non-empty and contain no '/'")
        return providers
