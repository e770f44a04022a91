"""The cache key: a stable hash of exactly what determines the answer, scoped to the tenant and namespace.

In: resolved provider and model, and every body field the model sees (messages after templating, tools,
response format, sampling parameters). Out: anything that only labels or routes the call (metadata, user,
stream flags, trace headers, retry/fallback/timeout, cache settings — those are not in `request.body`).
Keys are serialised with sorted keys, so two bodies that differ only in key order share an entry.
"""

from __future__ import annotations

import hashlib

import orjson

from portico.core.types import ChatRequest

_NOT_IN_KEY = frozenset({"stream", "stream_options", "user", "store", "safety_identifier", "metadata", "n_threads"})


def tenant_scope(client_key: str | None) -> str:
    """A tenant's cache scope: a short digest of its key (the key itself never reaches the cache store)."""
    if not client_key:
        return "open"
    return hashlib.sha256(client_key.encode()).hexdigest()[:16]


def cache_key(request: ChatRequest, provider: str, model: str) -> str:
    answer = {k: v for k, v in request.body.items() if k not in _NOT_IN_KEY}
    material = orjson.dumps(
        {"provider": provider, "model": model, "body": answer}, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
    )
    namespace = request.cache.namespace if request.cache is not None and request.cache.namespace else "-"
    digest = hashlib.sha256(material).hexdigest()
    return f"{tenant_scope(request.client_key)}:{hashlib.sha256(namespace.encode()).hexdigest()[:16]}:{digest}"
