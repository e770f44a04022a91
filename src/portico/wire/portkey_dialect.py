"""Portkey's header-driven options applied to a `ChatRequest`: BYOK, custom hosts, forwarded headers, timeouts, retries.

Rules (CHECKLIST AMB-19/20): the `Authorization` bearer is the *provider's* key only when `x-portkey-provider` (or
`x-portkey-custom-host`) and `x-portkey-api-key` are both sent and the bearer is neither a gateway key nor the
Portkey SDK's literal placeholder. A custom host must be on the configured allowlist, so a client can never make
the gateway call an arbitrary (internal) address.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from urllib.parse import urlsplit

from portico.core.errors import RequestError
from portico.core.types import (
    CacheOptions,
    ChatRequest,
    ProviderCredentials,
    ResolvedKey,
    RetryPolicy,
    RoutingPlan,
    Target,
)
from portico.wire.portkey import PortkeyHeaders
from portico.wire.portkey_config import (
    PORTKEY_RETRY_CODES,
    StoredConfigs,
    VirtualKeys,
    load_config,
    parse_config,
)
from portico.wire.portkey_hooks import parse_hooks

PLACEHOLDER_KEYS = frozenset({"OPENAI_API_KEY", "PORTKEY_API_KEY", ""})
NEVER_FORWARDED = frozenset({"authorization", "host", "content-length", "content-type", "cookie", "connection"})


def byok_key(headers: Mapping[str, str], portkey: PortkeyHeaders, is_gateway_key: Callable[[str], bool]) -> str | None:
    if not (portkey.provider or portkey.custom_host) or "x-portkey-api-key" not in headers:
        return None
    value = headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or token in PLACEHOLDER_KEYS or is_gateway_key(token):
        return None
    return token


def host_allowed(url: str, allowlist: Sequence[str]) -> bool:
    """Prefix match on scheme://host[:port]/path, compared after normalising case and trailing slashes."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.username or parts.password:
        return False
    candidate = f"{parts.scheme}://{parts.netloc.lower()}{parts.path}".rstrip("/") + "/"
    for allowed in allowlist:
        a = urlsplit(allowed)
        prefix = f"{a.scheme}://{a.netloc.lower()}{a.path}".rstrip("/") + "/"
        if candidate.startswith(prefix):
            return True
    return False


def apply_portkey_headers(
    request: ChatRequest,
    headers: Mapping[str, str],
    portkey: PortkeyHeaders,
    *,
    is_gateway_key: Callable[[str], bool],
    host_allowlist: Sequence[str],
    virtual_keys: VirtualKeys = lambda _: None,
    stored_configs: StoredConfigs = lambda _: None,
    is_provider: Callable[[str], bool] = lambda _: False,
) -> ChatRequest:
    """Provider choice follows AMB-20: config target, then virtual key, then `x-portkey-provider`, then the prefix."""
    changes: dict[str, object] = {}
    if portkey.virtual_key and not portkey.config:
        resolved = _virtual_key(portkey.virtual_key, virtual_keys, is_provider)
        changes["model"] = qualify(request.model, resolved.provider)
        if resolved.api_key or resolved.base_url:
            changes["credentials"] = ProviderCredentials(api_key=resolved.api_key, base_url=resolved.base_url)
    if portkey.config:
        config = load_config(portkey.config, stored_configs)
        context = {"metadata": dict(request.trace.metadata), "params": {**request.body, "model": request.model}}
        routing = parse_config(config, model=request.model, context=context, virtual_keys=virtual_keys)
        plan = routing.plan
        if plan.timeout_ms is None and portkey.request_timeout_ms:
            plan = replace(plan, timeout_ms=portkey.request_timeout_ms)
        changes["routing"] = plan
        if hooks := parse_hooks(config):
            changes["hooks"] = hooks
            changes["hook_frames"] = not portkey.strict_openai
        if routing.cache_ttl is not None:
            changes["cache"] = CacheOptions(routing.cache_ttl, portkey.cache_namespace, portkey.cache_force_refresh)
    api_key = byok_key(headers, portkey, is_gateway_key)
    base_url = None
    if portkey.custom_host:
        if not host_allowed(portkey.custom_host, host_allowlist):
            raise RequestError(
                f"x-portkey-custom-host '{portkey.custom_host}' is not on this gateway's allowlist "
                "(portkey.custom_host_allowlist).",
                code="custom_host_not_allowed",
                param="x-portkey-custom-host",
            )
        base_url = portkey.custom_host
    if api_key or base_url:
        changes.pop("credentials", None)
        changes["credentials"] = ProviderCredentials(api_key=api_key, base_url=base_url)
    if portkey.forward_headers:
        changes["forward_headers"] = {
            name: headers[name]
            for name in portkey.forward_headers
            if name in headers and name not in NEVER_FORWARDED and not name.startswith("x-portkey-")
        }
    if request.routing is None and "routing" not in changes and (portkey.retry_count or portkey.request_timeout_ms):
        retry = RetryPolicy(count=portkey.retry_count, on_codes=PORTKEY_RETRY_CODES) if portkey.retry_count else None
        changes["routing"] = RoutingPlan(
            targets=(Target(model=request.model),), retry=retry, timeout_ms=portkey.request_timeout_ms
        )
    return replace(request, **changes) if changes else request  # type: ignore[arg-type]


def qualify(model: str, provider: str) -> str:
    """With a header-selected provider, bare model ids are that provider's (AMB-20); a matching prefix is kept once."""
    return model if model.startswith(provider + "/") else f"{provider}/{model}"


def _virtual_key(name: str, virtual_keys: VirtualKeys, is_provider: Callable[[str], bool]) -> ResolvedKey:
    resolved = virtual_keys(name)
    if resolved is not None:
        return resolved
    if is_provider(name):  # AMB-20: a virtual key may simply name a configured provider
        return ResolvedKey(name)
    raise RequestError(f"Virtual key '{name}' not found.", code="virtual_key_not_found", param="x-portkey-virtual-key")
