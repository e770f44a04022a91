"""The pieces `PorticoApp` is assembled from that need a decision of their own: which routing-health store, what
the call log masks in bodies, the price table, the virtual-key secret, and the process-wide tuning done once the
long-lived objects exist."""

from __future__ import annotations

import gc

from portico.config.load import portico_home
from portico.config.schema import REDIS_SCHEMES, Settings
from portico.config_check import provider_configs
from portico.observability.bodies import BodyPolicy
from portico.observability.cost import Pricing
from portico.observability.startup import StartupError, describe_error
from portico.pipeline.health import HealthState, LocalHealth
from portico.providers.registry import ProviderRegistry
from portico.storage.secrets import SecretBox
from portico.storage.sqlite_writer import register_fast_adapters


def tune_process() -> None:
    """All process-wide tuning, in one place, called once at start-up when everything long-lived is built.

    Everything built so far (modules, config, engines) lives as long as the process: `gc.freeze` moves it out of
    the collector's sight, so collections under load scan request garbage only, not ~10^5 startup objects.
    Requests free almost everything by reference counting; with the default first threshold (700) the collector
    ran every ~70 requests, traversing every in-flight request's objects (10-13 µs per request at 64
    connections, measured), so the first threshold is 50,000 net allocations. The older generations keep
    CPython's default ratio (10): a cycle that survives (an exception with its traceback and frames) is freed
    within ~5 M allocations, a few thousand requests, instead of piling up.
    The sqlite3 adapters bind None and bool without the driver's adaptation protocol (the call log's rows)."""
    register_fast_adapters()
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 10, 10)


def health_state(settings: Settings) -> HealthState:
    """Shared through Redis when `routing.state_url` (or a Redis `cache.url`) names one; in-process otherwise."""
    routing = settings.routing
    url = routing.state_url or (settings.cache.url if settings.cache.url.startswith(REDIS_SCHEMES) else None)
    if url:
        from portico.pipeline.health_redis import RedisHealth  # redis-py (~6 MiB) only when it is used

        return RedisHealth(url, failure_threshold=routing.failure_threshold, cooldown_seconds=routing.cooldown_seconds)
    return LocalHealth(failure_threshold=routing.failure_threshold, cooldown_seconds=routing.cooldown_seconds)


def body_policy(settings: Settings, providers: ProviderRegistry) -> BodyPolicy:
    """What the call log keeps of bodies, and the provider and gateway keys it masks by value wherever they appear."""
    keys = [provider.config.api_key for provider in providers.all().values() if provider.config.api_key]
    return BodyPolicy(settings.logging.bodies, settings.logging.body_max_bytes, [*keys, *settings.auth.keys])


def pricing_of(settings: Settings) -> Pricing:
    """Prices by provider entry; each entry also answers to its adapter type's prices (`type: openai` → OpenAI's)."""
    adapters = {name: config.type or name for name, config in provider_configs(settings).items()}
    return Pricing(settings.pricing, {"mock": "mock", **adapters})


def secret_box() -> SecretBox:
    try:
        return SecretBox.from_env(home=portico_home())
    except (OSError, ValueError) as exc:
        raise StartupError(
            f"the secret key for virtual keys cannot be used ({describe_error(exc)})",
            "make $PORTICO_HOME/secret.key readable by this user, or set PORTICO_SECRET_KEY to a Fernet key",
        ) from exc
