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
from portico.core.types import ChatRequest, ProviderCredentials, RetryPolicy, RoutingPlan, Target
from portico.wire.portkey import PortkeyHeaders

PLACEHOLDER_KEYS = frozenset({"OPENAI_API_KEY", "PORTKEY_API_KEY", ""})
PORTKEY_RETRY_CODES = frozenset({429, 500, 502, 503, 504})
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
) -> ChatRequest:
    changes: dict[str, object] = {}
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
        changes["credentials"] = ProviderCredentials(api_key=api_key, base_url=base_url)
    if portkey.forward_headers:
        changes["forward_headers"] = {
            name: headers[name]
            for name in portkey.forward_headers
            if name in headers and name not in NEVER_FORWARDED and not name.startswith("x-portkey-")
        }
    if request.routing is None and (portkey.retry_count or portkey.request_timeout_ms):
        retry = RetryPolicy(count=portkey.retry_count, on_codes=PORTKEY_RETRY_CODES) if portkey.retry_count else None
        changes["routing"] = RoutingPlan(
            targets=(Target(model=request.model),), retry=retry, timeout_ms=portkey.request_timeout_ms
        )
    return replace(request, **changes) if changes else request  # type: ignore[arg-type]
