"""Cohere's embed (`POST /v2/embed`) and rerank (`POST /v2/rerank`) bodies and answers: pure translation.

Also Cohere Embed on Bedrock (InvokeModel), whose body is v2's without `model`. `input_type` is required by every
v3+ embed model: the request's hint, else `search_document` (what a knowledge base ingests; a search passes
`search_query`). Floats are always asked for by name (`embedding_types`), so the answer is `embeddings.float`;
the older `embeddings_floats` shape (a bare list) is read too.
"""

from __future__ import annotations

from typing import Any

from portico.core.embeddings import EmbeddingRequest, EmbeddingResult, RerankRequest, RerankResult
from portico.core.types import JSONObject
from portico.providers.openai_embed import ranked

MAX_BATCH = 96
"""Texts per call: Cohere's v2 embed and Cohere Embed on Bedrock both take at most 96."""


def embed_payload(request: EmbeddingRequest, model: str | None) -> JSONObject:
    """The `/v2/embed` body; without `model` for Bedrock, which names the model in the URL."""
    body: JSONObject = {
        "texts": list(request.texts),
        "input_type": request.input_type or "search_document",
        "embedding_types": ["float"],
    }
    if model is not None:
        body["model"] = model
    if request.dimensions is not None:
        body["output_dimension"] = request.dimensions
    return body


def parse_embed(data: JSONObject, model: str, expected: int, tokens: int | None = None) -> EmbeddingResult:
    embeddings: Any = data["embeddings"]
    floats = embeddings["float"] if isinstance(embeddings, dict) else embeddings
    vectors = [[float(x) for x in vector] for vector in floats]
    if len(vectors) != expected:
        raise ValueError(f"{len(vectors)} embeddings for {expected} texts")
    if tokens is None:
        billed = (data.get("meta") or {}).get("billed_units") or {}
        tokens = int(billed.get("input_tokens") or 0)
    return EmbeddingResult(vectors, tokens, model)


def rerank_payload(request: RerankRequest, model: str) -> JSONObject:
    body: JSONObject = {"model": model, "query": request.query, "documents": list(request.documents)}
    if request.top_n is not None:
        body["top_n"] = request.top_n
    return body


def parse_rerank(data: JSONObject, documents: int, top_n: int | None) -> RerankResult:
    """`results[]` ({index, relevance_score}, already in [0, 1] and best first; sorted again to be sure)."""
    pairs = [(int(item["index"]), float(item["relevance_score"])) for item in data["results"]]
    return RerankResult(ranked(pairs, documents, top_n))  # billed in search units, not tokens
