"""Embeddings on AWS Bedrock through InvokeModel (`POST /model/{modelId}/invoke`): pure translation.

Two body families, chosen by model id: Amazon Titan Text Embeddings (`amazon.titan-embed-text-v1`, `-v2:0`: one
`inputText` per call, so the adapter fans a batch out) and Cohere Embed on Bedrock (`cohere.embed-*`: Cohere's
v2 body without `model`, up to 96 texts). Titan v2 is asked for normalised vectors (its default, said explicitly);
G1 takes `inputText` only. Cohere's answer has no token count: Bedrock reports it in the
`X-Amzn-Bedrock-Input-Token-Count` response header.
"""

from __future__ import annotations

from collections.abc import Mapping

from portico.core.embeddings import EmbeddingRequest, EmbeddingResult
from portico.core.types import JSONObject
from portico.providers import cohere_embed

TITAN_CONCURRENCY = 8
"""Titan calls in flight per batch: one text per call, so a 96-text batch must not open 96 connections at once."""


def is_cohere(model: str) -> bool:
    return "cohere.embed" in model


def titan_payload(text: str, request: EmbeddingRequest, model: str) -> JSONObject:
    body: JSONObject = {"inputText": text}
    if "titan-embed-text-v1" not in model:  # G1 accepts inputText and nothing else
        body["normalize"] = True
        if request.dimensions is not None:
            body["dimensions"] = request.dimensions
    return body


def parse_titan(data: JSONObject) -> tuple[list[float], int]:
    return [float(x) for x in data["embedding"]], int(data.get("inputTextTokenCount") or 0)


def cohere_payload(request: EmbeddingRequest) -> JSONObject:
    return cohere_embed.embed_payload(request, None)


def parse_cohere(data: JSONObject, headers: Mapping[str, str], model: str, expected: int) -> EmbeddingResult:
    counted = headers.get("X-Amzn-Bedrock-Input-Token-Count") or headers.get("x-amzn-bedrock-input-token-count")
    return cohere_embed.parse_embed(data, model, expected, int(counted) if counted else 0)
