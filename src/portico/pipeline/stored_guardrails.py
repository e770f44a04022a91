"""Admin-stored custom guardrails for the request path: a spec from `storage.guardrails` compiled into a check on
first use, and again only when the stored spec changes (a write or a reload replaces the spec object).

Webhooks and provider moderation call out through the shared transport (`transport_poster`, `provider_moderator`),
with the guardrail's own timeout.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson

from portico.core.errors import RequestError, UpstreamTimeout
from portico.guardrails.base import Guardrail, GuardrailConfigError
from portico.guardrails.custom import build_custom
from portico.guardrails.moderation import Moderator
from portico.guardrails.webhook import Poster
from portico.providers.base import CallOptions
from portico.providers.registry import ProviderRegistry
from portico.providers.transport import Transport


class StoredGuardrails:
    """`GuardrailCatalog`'s lookup of custom ids: id → compiled check, or None when nothing is stored under it."""

    def __init__(
        self,
        lookup: Callable[[str], Mapping[str, Any] | None],
        post: Poster | None = None,
        moderate: Moderator | None = None,
    ) -> None:
        self.lookup = lookup
        self.post = post
        self.moderate = moderate
        self._compiled: dict[str, tuple[Mapping[str, Any], Guardrail]] = {}

    def __call__(self, guardrail_id: str) -> Guardrail | None:
        spec = self.lookup(guardrail_id)
        if spec is None:
            return None
        cached = self._compiled.get(guardrail_id)
        if cached is not None and cached[0] is spec:
            return cached[1]
        try:
            check = build_custom(spec, self.post, self.moderate)
        except GuardrailConfigError as exc:  # stored before a release that reads it differently
            raise RequestError(
                f"Stored guardrail '{guardrail_id}' cannot run: {exc}", code="invalid_guardrail", param="guardrails"
            ) from None
        self._compiled[guardrail_id] = (spec, check)
        return check


def transport_poster(transport: Transport) -> Poster:
    async def post(url: str, headers: Mapping[str, str], body: bytes, timeout_s: float) -> tuple[int, bytes]:
        options = CallOptions(timeout_s=timeout_s, connect_timeout_s=min(timeout_s, 10.0))
        try:
            status, _, answer = await transport.send("POST", url, headers, body, options, "guardrail webhook")
        except UpstreamTimeout:
            raise TimeoutError from None
        return status, answer

    return post


def provider_moderator(transport: Transport, providers: ProviderRegistry) -> Moderator:
    """Moderation through a configured provider's OpenAI-shaped `/moderations` endpoint, with its own key."""

    async def moderate(name: str, model: str, text: str, timeout_s: float) -> Mapping[str, Any]:
        provider = providers.get(name)
        headers = {"content-type": "application/json"}
        if provider.config.api_key:
            headers["authorization"] = f"Bearer {provider.config.api_key}"
        options = CallOptions(timeout_s=timeout_s, connect_timeout_s=min(timeout_s, 10.0))
        body = orjson.dumps({"model": model, "input": text})
        status, _, answer = await transport.send(
            "POST", provider.base_url + "/moderations", headers, body, options, name
        )
        if status != 200:
            raise RuntimeError(f"{name} /moderations answered HTTP {status}")
        result: Mapping[str, Any] = orjson.loads(answer)["results"][0]
        return result

    return moderate
