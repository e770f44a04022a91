"""OpenAI-shaped embeddings (`POST /embeddings`) and Jina/Cohere-shaped rerank (`POST /rerank`): pure translation.

`/embeddings` is OpenAI's API and every OpenAI-compatible server's (vLLM, Ollama, TEI's OpenAI route, Together, Azure
deployments). Vectors are always asked for as floats: base64 would be smaller, but not every compatible server
implements it, and the gateway re-encodes for a client that wants base64 anyway. `/rerank` is what vLLM, TEI's
OpenAI route and Jina serve: `results[].index` and `relevance_score`. Scores outside [0, 1] (a cross-encoder's raw
logits) are put through the logistic function, which keeps their order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import orjson

from portico.core.embeddings import EmbeddingRequest, EmbeddingResult, RerankRequest, RerankResult
from portico.core.types import JSONObject


def embeddings_body(request: EmbeddingRequest, model: str) -> bytes:
    body: JSONObject = {"model": model, "input": list(request.texts), "encoding_format": "float"}
    if request.dimensions is not None:
        body["dimensions"] = request.dimensions
    if request.user:
        body["user"] = request.user
    return orjson.dumps(body)


def parse_embeddings(data: JSONObject, model: str, expected: int) -> EmbeddingResult:
    """`data[]` back in input order (each item names its `index`); a count that differs is the upstream's error."""
    items = sorted(data["data"], key=lambda item: int(item["index"]))
    vectors = [[float(x) for x in item["embedding"]] for item in items]
    if len(vectors) != expected:
        raise ValueError(f"{len(vectors)} embeddings for {expected} inputs")
    usage = data.get("usage") or {}
    tokens = int(usage.get("prompt_tokens") or usage.get("total_tokens") or 0)
    return EmbeddingResult(vectors, tokens, str(data.get("model") or model))


def rerank_body(request: RerankRequest, model: str) -> bytes:
    body: JSONObject = {"model": model, "query": request.query, "documents": list(request.documents)}
    if request.top_n is not None:
        body["top_n"] = request.top_n
    return orjson.dumps(body)


def parse_rerank(data: JSONObject, documents: int, top_n: int | None) -> RerankResult:
    """`results[]` ({index, relevance_score}) best first, cut to `top_n`; indices outside the documents are errors."""
    pairs = [(int(item["index"]), float(item["relevance_score"])) for item in data["results"]]
    usage = data.get("usage") or {}
    return RerankResult(ranked(pairs, documents, top_n), int(usage.get("total_tokens") or 0))


def ranked(pairs: Sequence[tuple[int, float]], documents: int, top_n: int | None) -> list[tuple[int, float]]:
    """Validated, normalised to [0, 1] and sorted best first (ties by index, so the order is deterministic)."""
    for index, _ in pairs:
        if not 0 <= index < documents:
            raise IndexError(f"rerank index {index} outside {documents} documents")
    if any(score < 0.0 or score > 1.0 for _, score in pairs):
        pairs = [(index, _logistic(score)) for index, score in pairs]
    best = sorted(pairs, key=lambda pair: (-pair[1], pair[0]))
    return best[:top_n] if top_n is not None else best


def _logistic(score: float) -> float:
    if score >= 0:
        return 1.0 / (1.0 + math.exp(-score))
    exp = math.exp(score)
    return exp / (1.0 + exp)
