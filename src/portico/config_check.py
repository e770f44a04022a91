"""What `portico check-config` and `portico serve` refuse, in one place: `serve` runs the same check first, so
every config it would refuse is refused by the check, with the same message and key path.

`problems_in` is static (no I/O); `portico.connect_check` adds `--strict`'s connection checks.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from pathlib import Path

from portico.config.load import ConfigError, load_settings
from portico.config.schema import REDIS_SCHEMES, ProviderConfig, Settings
from portico.core.types import ResolvedKey
from portico.pipeline.hook_configs import hook_problem
from portico.providers.registry import Adapter, ProviderRegistry, check_provider, load_adapters, providers_from_env
from portico.wire.portkey_config import check_portkey_config


def validate_config(path: str | Path | None) -> list[str]:
    """Every problem that would stop `serve`, one `key.path: message` line each; [] when it would start."""
    try:
        settings = load_settings(path)
    except ConfigError as exc:
        return exc.problems
    return problems_in(settings)


def problems_in(settings: Settings) -> list[str]:
    problems = _provider_problems(settings)
    problems += storage_problems(settings.storage.url)
    problems += _url_problems(settings)
    moderation = settings.guardrails.moderation
    if moderation is not None and moderation.provider not in provider_configs(settings):
        problems.append(f"guardrails.moderation.provider: provider '{moderation.provider}' is not configured")
    for config_id, body in settings.portkey.configs.items():
        message = check_portkey_config(body, virtual_keys=_any_virtual_key) or hook_problem(body, None)
        if message is not None:
            problems.append(f"portkey.configs.{config_id}: {message}")
    return problems


def provider_configs(settings: Settings, adapters: Mapping[str, Adapter] | None = None) -> dict[str, ProviderConfig]:
    """The configured providers, or on embedded defaults every adapter whose key variable is set (plus `mock`)."""
    if settings.providers:
        return dict(settings.providers)
    return providers_from_env(adapters if adapters is not None else load_adapters(), os.environ)


def _provider_problems(settings: Settings) -> list[str]:
    try:
        adapters = load_adapters()
    except Exception as exc:  # a broken plugin package: name it rather than crash every worker
        return [f"providers: a provider plugin failed to load ({type(exc).__name__}: {exc})"]
    configs = provider_configs(settings, adapters)
    problems = [problem for name, config in configs.items() for problem in check_provider(name, config, adapters)]
    if problems:
        return problems
    try:  # adapters check what only they know (Azure's endpoint, Bedrock's botocore and region)
        ProviderRegistry.build(configs, adapters)
    except ConfigError as exc:
        return exc.problems
    except ValueError as exc:
        return str(exc).splitlines()
    return []


def storage_problems(url: str | None) -> list[str]:
    """The URL scheme, `?schema=`, and the PostgreSQL driver: what `Database` would refuse at start-up."""
    if url is None:
        return []
    from portico.storage.db import POSTGRES_DRIVER_MISSING, engine_url, schema_problem

    try:
        parsed, backend = engine_url(url)
    except ValueError as exc:
        return [str(exc)]
    if backend == "postgresql":
        try:
            importlib.import_module("asyncpg")
        except ImportError:
            return [POSTGRES_DRIVER_MISSING]
        problem = schema_problem(parsed)
        if problem:
            return [problem]
    return []


def _url_problems(settings: Settings) -> list[str]:
    from portico.cache.base import cache_url_problem

    problems = [cache_url_problem(settings.cache.url)]
    redis_keys = {"routing.state_url": settings.routing.state_url, "storage.notify_url": settings.storage.notify_url}
    for key, url in redis_keys.items():
        if url is not None and not url.startswith(REDIS_SCHEMES):
            problems.append(f"{key}: unsupported scheme in {url!r} (use redis://host:port/db or rediss://)")
    return [problem for problem in problems if problem]


def _any_virtual_key(name: str) -> ResolvedKey | None:
    """Static configs may name virtual keys stored later through the admin API: checked per request instead."""
    return ResolvedKey(provider=name)
