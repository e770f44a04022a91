"""`x-portkey-config` → a `RoutingPlan` (and cache options): Portkey's routing configs on Portico's routing engine.

Accepted (CHECKLIST AMB-21): inline JSON or the id of a stored config; `strategy.mode` single / fallback /
loadbalance / conditional (Mongo-style `conditions` on `metadata.*` and `params.*`, `then`/`default` naming a
target); nested `targets` with `provider` / `virtual_key` / `api_key` / `custom_host` / `override_params` /
`weight` / `retry` / `request_timeout`; top-level `retry {attempts, on_status_codes, use_retry_after_header}`,
`strategy.on_status_codes`, `request_timeout`, `cache {mode, max_age}`. A conditional strategy is decided here,
once, because everything it reads is known before routing starts. Every mistake is a 400 naming the config path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from portico.core.errors import RequestError
from portico.core.types import ResolvedKey, RetryPolicy, RoutingPlan, Target
from portico.wire.conditions import QueryError, matches

PORTKEY_RETRY_CODES = frozenset({429, 500, 502, 503, 504})
_MODES = {"single": "single", "fallback": "fallback", "loadbalance": "loadbalance"}


VirtualKeys = Callable[[str], ResolvedKey | None]
StoredConfigs = Callable[[str], Mapping[str, Any] | None]


@dataclass(frozen=True, slots=True)
class PortkeyRouting:
    plan: RoutingPlan
    cache_ttl: int | None = None


class ConfigError(RequestError):
    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"x-portkey-config {where}: {message}", code="invalid_config", param="x-portkey-config")


def load_config(value: str, stored: StoredConfigs) -> Mapping[str, Any]:
    text = value.strip()
    if text.startswith("{"):
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise ConfigError("", "is not valid JSON") from None
        if not isinstance(data, dict):
            raise ConfigError("", "must be a JSON object")
        return data
    found = stored(text)
    if found is None:
        raise RequestError(f"Config '{text}' not found.", code="config_not_found", param="x-portkey-config")
    return found


def parse_config(
    config: Mapping[str, Any],
    *,
    model: str,
    context: Mapping[str, Any],
    virtual_keys: VirtualKeys,
) -> PortkeyRouting:
    """`model` is the request's model (targets without `override_params.model` serve it); `context` holds
    `metadata` and `params` for conditional routing."""
    plan = _node(config, "config", model, context, virtual_keys)
    if isinstance(plan, Target):
        plan = RoutingPlan(mode="single", targets=(plan,))
    return PortkeyRouting(plan, _cache_ttl(config.get("cache")))


def check_portkey_config(config: Mapping[str, Any], *, virtual_keys: VirtualKeys) -> str | None:
    """Why a stored or static config could never route (its message naming the path), or None. The one validator
    of the admin API's `PUT /v1/admin/configs/{id}` and of `portkey.configs` in the config file."""
    try:
        parse_config(config, model="probe", context={}, virtual_keys=virtual_keys)
    except ConfigError as exc:
        return exc.message
    except RequestError as exc:  # an unknown virtual key; a conditional config may lack a default: fine here
        if exc.code != "no_matching_condition":
            return exc.message
    return None


def _node(
    spec: Mapping[str, Any], where: str, model: str, context: Mapping[str, Any], keys: VirtualKeys
) -> Target | RoutingPlan:
    if not isinstance(spec, Mapping):
        raise ConfigError(where, "must be an object")
    retry = _retry(spec.get("retry"), f"{where}.retry")
    timeout = _positive(spec.get("request_timeout"), f"{where}.request_timeout")
    weight = _weight(spec.get("weight"), f"{where}.weight")
    targets = spec.get("targets")
    if targets is None:
        return _target(spec, where, model, keys, retry, timeout, weight)
    if not isinstance(targets, list) or not targets:
        raise ConfigError(f"{where}.targets", "must be a non-empty list")
    strategy = spec.get("strategy") or {"mode": "fallback" if len(targets) > 1 else "single"}
    if not isinstance(strategy, Mapping):
        raise ConfigError(f"{where}.strategy", "must be an object")
    mode = strategy.get("mode")
    children = [_node(t, f"{where}.targets[{i}]", model, context, keys) for i, t in enumerate(targets)]
    codes = strategy.get("on_status_codes")
    on_codes = frozenset(_codes(codes, f"{where}.strategy.on_status_codes")) if codes is not None else None
    if mode == "conditional":
        chosen = _conditional(strategy, targets, children, where, context)
        return RoutingPlan("single", (chosen,), retry, timeout, None, weight)
    if mode not in _MODES:
        raise ConfigError(
            f"{where}.strategy.mode", f"must be one of single, fallback, loadbalance, conditional; got {mode!r}"
        )
    return RoutingPlan(_MODES[mode], tuple(children), retry, timeout, on_codes, weight)  # type: ignore[arg-type]


def _target(
    spec: Mapping[str, Any],
    where: str,
    model: str,
    keys: VirtualKeys,
    retry: RetryPolicy | None,
    timeout: float | None,
    weight: float,
) -> Target:
    overrides = spec.get("override_params") or {}
    if not isinstance(overrides, Mapping):
        raise ConfigError(f"{where}.override_params", "must be an object")
    provider = spec.get("provider")
    api_key = spec.get("api_key")
    base_url = spec.get("custom_host")
    virtual_key = spec.get("virtual_key")
    if virtual_key is not None:
        resolved = keys(str(virtual_key))
        if resolved is None:
            raise RequestError(
                f"Virtual key '{virtual_key}' not found ({where}.virtual_key).",
                code="virtual_key_not_found",
                param="x-portkey-config",
            )
        provider, api_key, base_url = resolved.provider, api_key or resolved.api_key, base_url or resolved.base_url
    target_model = str(overrides.get("model") or model)
    if provider is not None and target_model.startswith(f"{provider}/"):
        target_model = target_model[len(provider) + 1 :]
    return Target(
        model=target_model,
        weight=weight,
        provider=str(provider) if provider is not None else None,
        override_params={k: v for k, v in overrides.items() if k != "model"},
        api_key=str(api_key) if api_key else None,
        base_url=str(base_url) if base_url else None,
        retry=retry,
        timeout_ms=timeout,
        label=where,
    )


def _conditional(
    strategy: Mapping[str, Any],
    specs: list[Any],
    children: list[Target | RoutingPlan],
    where: str,
    context: Mapping[str, Any],
) -> Target | RoutingPlan:
    names = {
        str(s.get("name")): c for s, c in zip(specs, children, strict=True) if isinstance(s, Mapping) and s.get("name")
    }
    conditions = strategy.get("conditions") or []
    if not isinstance(conditions, list):
        raise ConfigError(f"{where}.strategy.conditions", "must be a list")
    for i, condition in enumerate(conditions):
        if not isinstance(condition, Mapping):
            raise ConfigError(f"{where}.strategy.conditions[{i}]", "must be an object")
        try:
            hit = matches(condition.get("query"), context)
        except QueryError as exc:
            raise ConfigError(f"{where}.strategy.conditions[{i}].query", str(exc)) from None
        if hit:
            return _named(names, condition.get("then"), f"{where}.strategy.conditions[{i}].then")
    default = strategy.get("default")
    if default is None:
        raise RequestError(
            "No condition of the x-portkey-config matched and it names no default target.",
            code="no_matching_condition",
            param="x-portkey-config",
        )
    return _named(names, default, f"{where}.strategy.default")


def _named(names: Mapping[str, Target | RoutingPlan], name: Any, where: str) -> Target | RoutingPlan:
    if str(name) not in names:
        raise ConfigError(where, f"names no target ({name!r})")
    return names[str(name)]


def _retry(spec: Any, where: str) -> RetryPolicy | None:
    if spec is None:
        return None
    if not isinstance(spec, Mapping):
        raise ConfigError(where, "must be an object")
    attempts = spec.get("attempts", 0)
    if not isinstance(attempts, int) or isinstance(attempts, bool) or not 0 <= attempts <= 5:
        raise ConfigError(f"{where}.attempts", "must be an integer from 0 to 5")
    codes = spec.get("on_status_codes")
    on_codes = frozenset(_codes(codes, f"{where}.on_status_codes")) if codes is not None else PORTKEY_RETRY_CODES
    return RetryPolicy(
        count=attempts, on_codes=on_codes, use_retry_after=spec.get("use_retry_after_header") is not False
    )


def _codes(value: Any, where: str) -> list[int]:
    if not isinstance(value, list) or not all(isinstance(c, int) and 100 <= c <= 599 for c in value):
        raise ConfigError(where, "must be a list of HTTP status codes")
    return value


def _positive(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        raise ConfigError(where, "must be a positive number of milliseconds")
    return float(value)


def _weight(value: Any, where: str) -> float:
    if value is None:
        return 1.0
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        raise ConfigError(where, "must be a non-negative number")
    return float(value)


def _cache_ttl(spec: Any) -> int | None:
    if not isinstance(spec, Mapping) or spec.get("mode") not in ("simple", "semantic"):
        return None
    max_age = spec.get("max_age")
    return int(max_age) if isinstance(max_age, int | float) and max_age > 0 else 1800
