"""`x-portkey-*` request headers → the gateway's request options (CHECKLIST §1.3, AMB-19..22, AMB-65).

Only headers are read here; a Portkey routing config (`x-portkey-config`) is turned into a `RoutingPlan` by
`wire.portkey_config`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from portico.core.errors import FieldError, ValidationFailed

TRACE_HEADERS = {
    "x-portkey-trace-id": "trace_id",
    "x-portkey-span-id": "span_id",
    "x-portkey-parent-span-id": "parent_span_id",
    "x-portkey-span-name": "span_name",
}


@dataclass(slots=True)
class PortkeyHeaders:
    trace: dict[str, str | None] = field(default_factory=dict)
    metadata: dict[str, Any] | None = None
    cache_namespace: str | None = None
    cache_force_refresh: bool = False
    provider: str | None = None
    virtual_key: str | None = None
    config: str | None = None
    custom_host: str | None = None
    request_timeout_ms: float | None = None
    retry_count: int | None = None
    forward_headers: tuple[str, ...] = ()
    strict_openai: bool = True


def has_portkey_headers(headers: Mapping[bytes, bytes]) -> bool:
    """Any name starting `x-portkey-` among the raw (lower-case) names, checked in one join (names hold no line
    feed): every request asks."""
    return b"\nx-portkey-" in b"\n" + b"\n".join(headers)


def read_portkey_headers(headers: Mapping[str, str]) -> PortkeyHeaders:
    trace = {field_name: headers.get(name) for name, field_name in TRACE_HEADERS.items() if name in headers}
    return PortkeyHeaders(
        trace=trace,
        metadata=_json_object(headers, "x-portkey-metadata"),
        cache_namespace=headers.get("x-portkey-cache-namespace") or None,
        cache_force_refresh=_flag(headers.get("x-portkey-cache-force-refresh")),
        provider=headers.get("x-portkey-provider") or None,
        virtual_key=headers.get("x-portkey-virtual-key") or None,
        config=headers.get("x-portkey-config") or None,
        custom_host=headers.get("x-portkey-custom-host") or None,
        request_timeout_ms=_number(headers, "x-portkey-request-timeout"),
        retry_count=_int(headers, "x-portkey-retry-count"),
        forward_headers=tuple(
            h.strip().lower() for h in (headers.get("x-portkey-forward-headers") or "").split(",") if h.strip()
        ),
        strict_openai=not _is_false(headers.get("x-portkey-strict-open-ai-compliance")),
    )


def _flag(value: str | None) -> bool:
    return value is not None and value.strip().lower() in ("true", "1", "yes")


def _is_false(value: str | None) -> bool:
    return value is not None and value.strip().lower() in ("false", "0", "no")


def _json_object(headers: Mapping[str, str], name: str) -> dict[str, Any] | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError:
        raise ValidationFailed([FieldError(("header", name), "Invalid JSON", "json_invalid")]) from None
    if not isinstance(data, dict):
        raise ValidationFailed([FieldError(("header", name), "Expected a JSON object", "dict_type")])
    return data


def _number(headers: Mapping[str, str], name: str) -> float | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        raise ValidationFailed([FieldError(("header", name), "Expected a number", "float_parsing")]) from None
    if number <= 0:
        raise ValidationFailed([FieldError(("header", name), "Must be greater than 0", "greater_than")])
    return number


def _int(headers: Mapping[str, str], name: str) -> int | None:
    value = _number(headers, name)
    if value is None:
        return None
    if value != int(value) or value > 5:
        raise ValidationFailed([FieldError(("header", name), "Expected an integer from 1 to 5", "int_parsing")])
    return int(value)
