"""PorticoError → HTTP: one table for every status and body shape the gateway returns.

Validation failures carry both shapes in one body: vLLM/FastAPI's `{"detail": [{loc, msg, type}]}` and OpenAI's
`{"error": {message, type, param, code}}`, so every SDK shows a useful message. `/v2/*` bodies also get orq's
top-level `code` and `message`. Upstream HTTP failures answer 502 (5xx) except to Portkey clients, who get the
upstream's own status as Portkey's gateway gives it.
"""

from __future__ import annotations

from typing import Any

import orjson

from portico.core.errors import GuardrailViolation, PorticoError, ProviderError, UpstreamHTTPError, ValidationFailed
from portico.core.types import Dialect


def error_payload(error: PorticoError, dialect: Dialect) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "error": {"message": error.message, "type": error.type, "param": error.param, "code": error.code}
    }
    if isinstance(error, ValidationFailed):
        payload["detail"] = [{"loc": list(e.loc), "msg": e.msg, "type": e.type} for e in error.errors]
    if isinstance(error, ProviderError):
        payload["error"]["provider"] = error.provider
        if error.upstream_status is not None:
            payload["error"]["upstream_status"] = error.upstream_status
    if isinstance(error, GuardrailViolation) and error.hook_results is not None:
        payload["hook_results"] = error.hook_results
    if dialect == "orq":
        payload["code"] = str(error.http_status)
        payload["message"] = error.message
    return payload


def status_for(error: PorticoError, dialect: Dialect) -> int:
    """The status a failed request answers with: `error.http_status`, except in the Portkey dialect, where an
    upstream's HTTP error keeps the upstream's own status (a 500 stays 500, a 503 503), as Portkey's gateway
    returns the last attempt's response (`retryHandler.ts` rebuilds it with `status: error.status`).

    Errors without an upstream status (connection failures, timeouts, malformed answers) keep 502/504 everywhere."""
    if dialect == "portkey" and isinstance(error, UpstreamHTTPError):
        upstream = error.upstream_status
        if upstream is not None and 400 <= upstream <= 599:
            return upstream
    return error.http_status


def error_body(error: PorticoError, dialect: Dialect) -> bytes:
    return orjson.dumps(error_payload(error, dialect))


def error_headers(error: PorticoError) -> list[tuple[bytes, bytes]]:
    headers: list[tuple[bytes, bytes]] = []
    if isinstance(error, ProviderError) and error.retry_after is not None and error.http_status == 429:
        headers.append((b"retry-after", str(max(1, round(error.retry_after))).encode()))
    if error.http_status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    return headers


def internal_error(request_id: str) -> PorticoError:
    return PorticoError(f"Internal gateway error (request {request_id}); the details are in the gateway log.")
