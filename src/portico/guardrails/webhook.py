"""A webhook guardrail: the gateway POSTs `{text, phase, model, metadata}` and expects `{"verdict": bool, "reason"?}`
within `timeout_ms`. A timeout, an error status or an unreadable answer fails closed (refuse) or open (pass, noted
in the reason) as `on_error` says. The HTTP call itself is injected (`Poster`): this layer opens no connection.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson

from portico.guardrails.base import GuardContext, GuardrailConfigError, Verdict

Poster = Callable[[str, Mapping[str, str], bytes, float], Awaitable[tuple[int, bytes]]]
"""(url, headers, body, timeout in seconds) → (status, body); raises on timeouts and connection failures."""


class Webhook:
    kind = "webhook"

    def __init__(self, params: Mapping[str, Any], post: Poster | None) -> None:
        url = params.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise GuardrailConfigError("webhook: 'url' must be an http(s) URL")
        timeout_ms = params.get("timeout_ms", 3000)
        if not isinstance(timeout_ms, int | float) or not 0 < timeout_ms <= 60_000:
            raise GuardrailConfigError("webhook: 'timeout_ms' must be between 1 and 60000")
        on_error = params.get("on_error", "deny")
        if on_error not in ("allow", "deny"):
            raise GuardrailConfigError("webhook: 'on_error' must be allow (fail open) or deny (fail closed)")
        headers = params.get("headers") or {}
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise GuardrailConfigError("webhook: 'headers' must map names to strings")
        self.url, self.timeout_s, self.fail_open = url, timeout_ms / 1000, on_error == "allow"
        self.headers = {"content-type": "application/json", **headers}
        self.post = post

    async def check(self, text: str, context: GuardContext) -> Verdict:
        if self.post is None:
            return self._failed("no HTTP client is available")
        body = orjson.dumps({"text": text, "phase": context.phase, "model": context.model,
                             "metadata": dict(context.metadata)})  # fmt: skip
        try:
            status, answer = await self.post(self.url, self.headers, body, self.timeout_s)
        except TimeoutError:
            return self._failed(f"the webhook did not answer within {self.timeout_s:g}s")
        except Exception as exc:  # any failure of the call is the configured failure mode, never a crash
            return self._failed(f"the webhook call failed ({type(exc).__name__})")
        if not 200 <= status < 300:
            return self._failed(f"the webhook answered HTTP {status}")
        try:
            decoded = orjson.loads(answer)
        except orjson.JSONDecodeError:
            return self._failed("the webhook answer is not JSON")
        verdict = decoded.get("verdict") if isinstance(decoded, dict) else None
        if not isinstance(verdict, bool):
            return self._failed("the webhook answer has no boolean 'verdict'")
        reason = decoded.get("reason")
        return Verdict(verdict, reason if isinstance(reason, str) else "" if verdict else "refused by the webhook")

    def _failed(self, why: str) -> Verdict:
        if self.fail_open:
            return Verdict(True, f"{why}; allowed (on_error: allow)")
        return Verdict(False, f"{why}; refused (on_error: deny)")
