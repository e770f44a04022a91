"""The one tree of errors the gateway raises; `portico.http.errors` turns any of them into an HTTP response.

    PorticoError                      http_status, type, code, param, message
    ├── RequestError                  400  the client's request cannot be served as sent
    │   ├── MalformedJSON             400
    │   ├── ValidationFailed          422  {"detail": [{loc, msg, type}]} (vLLM / FastAPI shape)
    │   ├── UnknownModel              400/404 names the provider or model
    │   ├── UnsupportedParameter      400  a provider cannot honour a parameter that changes the answer
    │   ├── GuardrailViolation        400  a guardrail refused the input or the answer (Portkey: 446)
    │   ├── PayloadTooLarge           413
    │   └── UnsupportedMediaType      415  an upload of a file type the gateway cannot read
    ├── AuthenticationFailed          401
    ├── NotFound                      404
    ├── RateLimited                   429  the gateway's own limits
    └── ProviderError                 provider, upstream_status, retryable, retry_after
        ├── UpstreamHTTPError         4xx passed through with the provider's message; 5xx → 502
        ├── UpstreamConnectionError   502
        ├── UpstreamTimeout           504
        └── UpstreamProtocolError     502  the upstream answered something that is not its API
Errors never carry credentials: messages are built from statuses and upstream error text only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class PorticoError(Exception):
    http_status: int = 500
    type: str = "internal_error"

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param


class RequestError(PorticoError):
    http_status = 400
    type = "invalid_request_error"


class MalformedJSON(RequestError):
    def __init__(self, message: str = "The request body is not valid JSON.") -> None:
        super().__init__(message, code="invalid_json")


@dataclass(frozen=True, slots=True)
class FieldError:
    loc: tuple[str | int, ...]
    msg: str
    type: str = "value_error"


class ValidationFailed(RequestError):
    http_status = 422

    def __init__(self, errors: list[FieldError]) -> None:
        first = errors[0]
        where = ".".join(str(p) for p in first.loc[1:]) or None
        super().__init__(f"{first.msg} (at {where})" if where else first.msg, code="validation_error", param=where)
        self.errors = errors


class UnknownModel(RequestError):
    def __init__(self, message: str, *, status: int = 400, param: str = "model") -> None:
        super().__init__(message, code="model_not_found", param=param)
        self.http_status = status


class UnsupportedParameter(RequestError):
    def __init__(self, provider: str, param: str, why: str = "") -> None:
        detail = f": {why}" if why else ""
        super().__init__(
            f"Provider '{provider}' does not support the parameter '{param}'{detail}.",
            code="unsupported_parameter",
            param=param,
        )


class GuardrailViolation(RequestError):
    """`code` names the guardrail that refused; `hook_results` (Portkey dialect) joins the error body."""

    type = "guardrail_violation"

    def __init__(self, message: str, *, guardrail: str, status: int = 400, hook_results: Any = None) -> None:
        super().__init__(message, code=guardrail, param="guardrails")
        self.http_status = status
        self.hook_results = hook_results


class PayloadTooLarge(RequestError):
    http_status = 413

    def __init__(self, limit: int) -> None:
        super().__init__(f"The request body exceeds the limit of {limit} bytes.", code="payload_too_large")


class UnsupportedMediaType(RequestError):
    http_status = 415

    def __init__(self, message: str, *, param: str | None = "file") -> None:
        super().__init__(message, code="unsupported_media_type", param=param)


class AuthenticationFailed(PorticoError):
    http_status = 401
    type = "authentication_error"

    def __init__(self, message: str = "Invalid or missing API key.") -> None:
        super().__init__(message, code="invalid_api_key")


class NotFound(PorticoError):
    http_status = 404
    type = "not_found_error"


class RateLimited(PorticoError):
    http_status = 429
    type = "rate_limit_error"


class ProviderError(PorticoError):
    """An upstream failed; `retryable` tells the routing layer whether trying again may help."""

    type = "upstream_error"

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        upstream_status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
        code: str | None = None,
        param: str | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message, code=code, param=param)
        self.provider = provider
        self.upstream_status = upstream_status
        self.retryable = retryable
        self.retry_after = retry_after
        self.body = body


class UpstreamHTTPError(ProviderError):
    """A non-2xx answer. Client errors keep their status (the caller can fix them); server errors become 502."""

    def __init__(self, message: str, *, provider: str, upstream_status: int, **kw: Any) -> None:
        kw.setdefault("retryable", upstream_status in (408, 409, 429) or upstream_status >= 500)
        super().__init__(message, provider=provider, upstream_status=upstream_status, **kw)
        self.http_status = upstream_status if 400 <= upstream_status < 500 else 502
        self.type = _UPSTREAM_TYPES.get(upstream_status, "upstream_error")


_UPSTREAM_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


class UpstreamConnectionError(ProviderError):
    http_status = 502
    type = "upstream_connection_error"

    def __init__(self, message: str, *, provider: str) -> None:
        super().__init__(message, provider=provider, retryable=True, code="upstream_unreachable")


class UpstreamTimeout(ProviderError):
    http_status = 504
    type = "timeout_error"

    def __init__(self, message: str, *, provider: str) -> None:
        super().__init__(message, provider=provider, retryable=True, code="upstream_timeout")


class UpstreamProtocolError(ProviderError):
    http_status = 502
    type = "upstream_error"

    def __init__(self, message: str, *, provider: str) -> None:
        super().__init__(message, provider=provider, retryable=True, code="upstream_bad_response")
