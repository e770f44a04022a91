"""A small client of a running gateway's admin API for the `portico` command (stdlib `urllib` only).

Every failure becomes an `AdminError` with a one-line message for the operator and the exit code the command
returns: 3 the gateway cannot be reached, 4 the key is refused (401), 1 anything else the gateway refused.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any

DEFAULT_URL = "http://127.0.0.1:8080"
EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_UNAUTHORIZED = 1, 3, 4


class AdminError(Exception):
    def __init__(self, message: str, exit_code: int = EXIT_REFUSED, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.status = status


class AdminClient:
    """`key` defaults to `$PORTICO_API_KEY`; no key sends no Authorization header (an open gateway)."""

    def __init__(self, url: str = DEFAULT_URL, key: str | None = None, timeout: float = 30) -> None:
        self.url = url.rstrip("/")
        self.key = key if key is not None else os.environ.get("PORTICO_API_KEY")
        self.timeout = timeout

    def call(
        self, method: str, path: str, body: Any = None, *, raw: tuple[str, bytes] | None = None
    ) -> tuple[int, dict[str, str], Any]:
        """(status, headers, decoded JSON body or None). 2xx and 404 are returned; other statuses raise.
        `raw` = (content type, bytes) sends a body as is (a multipart upload) instead of `body` as JSON."""
        headers = {"accept": "application/json"}
        data = None
        if raw is not None:
            headers["content-type"], data = raw
        elif body is not None:
            data = json.dumps(body).encode()
            headers["content-type"] = "application/json"
        if self.key:
            headers["authorization"] = f"Bearer {self.key}"
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                return answer.status, _lower(answer.headers.items()), _decode(answer.read())
        except urllib.error.HTTPError as error:
            status, payload = error.code, _decode(error.read())
            if status == 404:
                return status, _lower(error.headers.items()), payload
            raise _refusal(status, payload) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise AdminError(f"cannot reach the gateway at {self.url} ({reason})", EXIT_UNREACHABLE) from None


def _lower(items: Any) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in items}


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def _refusal(status: int, payload: Any) -> AdminError:
    error = payload.get("error") if isinstance(payload, dict) else None
    message = str(error.get("message")) if isinstance(error, dict) else f"HTTP {status}"
    if status == 401:
        return AdminError(
            f"the gateway refused the key ({message}); pass --key or set PORTICO_API_KEY", EXIT_UNAUTHORIZED, status
        )
    if status == 422 and isinstance(payload, dict) and isinstance(payload.get("detail"), list):
        problems = [
            ".".join(str(p) for p in item.get("loc", [])[1:]) + f": {item.get('msg')}"
            for item in payload["detail"]
            if isinstance(item, dict)
        ]
        message = "invalid: " + "; ".join(problems)
    return AdminError(message, EXIT_REFUSED, status)
