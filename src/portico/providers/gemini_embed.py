"""Gemini embeddings through `models/{model}:batchEmbedContents`: pure translation of the body and the answer.

One `EmbedContentRequest` per text (each naming the model again, as the API requires), at most 100 per call. The
request's `input_type` hint becomes Gemini's `taskType`; `dimensions` its `outputDimensionality` (newer models
only: older ones answer 400, which the client then sees). The answer carries no token count, so usage is 0.
"""

from __future__ import annotations

from portico.core.embeddings import EmbeddingRequest, EmbeddingResult
from portico.core.types import JSONObject

MAX_BATCH = 100
TASK_TYPES = {
    "search_document": "RETRIEVAL_DOCUMENT",
    "search_query": "RETRIEVAL_QUERY",
    "classification": "CLASSIFICATION",
    "clustering": "CLUSTERING",
}


def batch_payload(request: EmbeddingRequest, model_path: str) -> JSONObject:
    """`model_path` is `models/<id>` (or a tuned model's own collection), as in the URL."""
    common: JSONObject = {}
    if request.input_type is not None:
        common["taskType"] = TASK_TYPES[request.input_type]
    if request.dimensions is not None:
        common["outputDimensionality"] = request.dimensions
    requests = [{"model": model_path, "content": {"parts": [{"text": text}]}, **common} for text in request.texts]
    return {"requests": requests}


def parse_batch(data: JSONObject, model: str, expected: int) -> EmbeddingResult:
    vectors = [[float(x) for x in item["values"]] for item in data["embeddings"]]
    if len(vectors) != expected:
        raise ValueError(f"{len(vectors)} embeddings for {expected} texts")
    return EmbeddingResult(vectors, 0, model)
