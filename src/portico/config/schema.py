"""The typed model of Portico's YAML configuration; `portico check-config` and startup validate against it.

Every section has a default so that an empty file (or no file) runs the gateway on embedded defaults.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    workers: int = Field(1, ge=1, le=256)
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024, description="Larger request bodies get 413.")


class AuthConfig(_Section):
    keys: list[str] = Field(default_factory=list, description="Client keys; an empty list leaves the gateway open.")


class ProviderConfig(BaseModel):
    """One upstream. `type` names the adapter (defaults to the entry's own name); adapter options may follow."""

    model_config = ConfigDict(extra="allow")

    type: str | None = None
    api_key: str | None = None
    base_url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    models: list[str] = Field(default_factory=list, description="Models listed by GET /v1/models.")
    timeout: float = Field(600.0, gt=0, description="Seconds one upstream call may take in all.")
    connect_timeout: float = Field(10.0, gt=0)

    @property
    def options(self) -> dict[str, Any]:
        """Adapter-specific keys (api_version, region, default_max_tokens, ...)."""
        return dict(self.model_extra or {})


class StorageConfig(_Section):
    url: str | None = Field(None, description="sqlite:///path or postgresql://...; default: $PORTICO_HOME/portico.db")


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


class LoggingConfig(_Section):
    level: str = "INFO"
    request_log: bool = Field(True, description="Record every call in storage (off the hot path).")
    queue_size: int = Field(10000, ge=1)


class Settings(_Section):
    server: ServerConfig = Field(default_factory=ServerConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    portkey: PortkeyConfig = Field(default_factory=PortkeyConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)

    @field_validator("providers")
    @classmethod
    def _names_have_no_slash(cls, providers: dict[str, ProviderConfig]) -> dict[str, ProviderConfig]:
        for name in providers:
            if not name or "/" in name:
                raise ValueError(f"provider name {name!r} must be non-empty and contain no '/'")
        return providers
