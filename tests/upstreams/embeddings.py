"""Mock embeddings and rerank upstreams in each provider's real wire format, with the shared scripted failures.

- OpenAI `/v1/embeddings` (and Azure's `/openai/deployments/{d}/embeddings`): `data[]` sent in *reverse* order with
  their `index`, as nothing in the API promises order; `encoding_format` float only, like a vLLM server.
- vLLM/TEI/Jina `/v1/rerank`: `results[]` with `index`, `relevance_score` and `document`.
- Gemini `/v1beta/models/{model}:batchEmbedContents`: every request must name the URL's model (the API checks).
- Cohere `/v2/embed` (`embeddings.float`, `meta.billed_units.input_tokens`) and `/v2/rerank`.
- Bedrock `/model/{model}/invoke`: Titan (`inputText` → `embedding`) and Cohere Embed (`texts`), SigV4 checked.
Install this before the chat mocks: Gemini's chat route pattern would otherwise take `:batchEmbedContents`.
"""

from __future__ import annotations

import hashlib
import math
import struct
from typing import Any

from aiohttp import web

from tests.upstreams import bedrock, gemini
from tests.upstreams.openai import error_body
from tests.upstreams.server import UpstreamState, read_json

DEFAULT_DIMS = 8


def vector(text: str, dims: int = DEFAULT_DIMS) -> list[float]:
    """A deterministic unit vector per text (what the "model" answers); tests compare against it."""
    raw = b"".join(hashlib.sha256(f"{text}#{i}".encode()).digest() for i in range(dims // 8 + 1))
    values = [struct.unpack_from("<i", raw, 4 * i)[0] / 2**31 for i in range(dims)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [round(v / norm, 6) for v in values]


def overlap(query: str, document: str) -> float:
    q, d = set(query.lower().split()), set(document.lower().split())
    return len(q & d) / len(q) if q else 0.0


def _failure(state: UpstreamState, model: str) -> tuple[int, str, float | None] | None:
    failure = state.take_failure(model)
    return (failure.status, failure.message, failure.retry_after) if failure is not None else None


def install_openai(app: web.Application, state: UpstreamState) -> None:
    async def embeddings(request: web.Request) -> web.Response:
        body = await read_json(request)
        state.record(request, body)
        model = str(body.get("model", ""))
        if (failed := _failure(state, model)) is not None:
            return web.json_response(error_body(failed[0], failed[1]), status=failed[0])
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        if body.get("encoding_format") not in (None, "float"):
            return web.json_response(error_body(400, "encoding_format must be float"), status=400)
        dims = int(body.get("dimensions") or DEFAULT_DIMS)
        data = [{"object": "embedding", "index": i, "embedding": vector(t, dims)} for i, t in enumerate(texts)]
        tokens = sum(len(t.split()) for t in texts)
        return web.json_response(
            {
                "object": "list",
                "data": data[::-1],
                "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    async def rerank(request: web.Request) -> web.Response:
        body = await read_json(request)
        state.record(request, body)
        model = str(body.get("model", ""))
        if (failed := _failure(state, model)) is not None:
            return web.json_response(error_body(failed[0], failed[1]), status=failed[0])
        logits = state.mode(model)[0] == "logits"  # a cross-encoder served without its sigmoid
        results: list[dict[str, Any]] = [
            {
                "index": i,
                "document": {"text": doc},
                "relevance_score": (overlap(body["query"], doc) * 8 - 4) if logits else overlap(body["query"], doc),
            }
            for i, doc in enumerate(body["documents"])
        ]
        results.sort(key=lambda r: -r["relevance_score"])
        if body.get("top_n"):
            results = results[: int(body["top_n"])]
        return web.json_response({"id": "rerank-1", "model": model, "usage": {"total_tokens": 7}, "results": results})

    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_post("/openai/deployments/{deployment}/embeddings", embeddings)
    app.router.add_post("/v1/rerank", rerank)


def install_gemini(app: web.Application, state: UpstreamState) -> None:
    async def batch(request: web.Request) -> web.Response:
        body = await read_json(request)
        model = request.match_info["model"]
        state.record(request, body)
        if request.headers.get("x-goog-api-key") != "gemini-key":
            return gemini.error(403, "API key not valid. Please pass a valid API key.")
        if (failed := _failure(state, model)) is not None:
            return gemini.error(failed[0], failed[1], failed[2])
        out = []
        for item in body["requests"]:
            if item.get("model") != f"models/{model}":
                return gemini.error(400, f"Model {item.get('model')} does not match the URL model models/{model}")
            text = " ".join(p["text"] for p in item["content"]["parts"])
            out.append({"values": vector(text, int(item.get("outputDimensionality") or DEFAULT_DIMS))})
        return web.json_response({"embeddings": out})

    app.router.add_post(r"/v1beta/models/{model:[^/:]+}:batchEmbedContents", batch)


def install_cohere(app: web.Application, state: UpstreamState) -> None:
    def refuse(status: int, message: str) -> web.Response:
        return web.json_response({"id": "err-1", "message": message}, status=status)

    async def embed(request: web.Request) -> web.Response:
        body = await read_json(request)
        state.record(request, body)
        if (failed := _failure(state, str(body.get("model")))) is not None:
            return refuse(failed[0], failed[1])
        if body.get("input_type") not in ("search_document", "search_query", "classification", "clustering"):
            return refuse(400, "invalid request: input_type is required for embed-v3 and newer models")
        if len(body["texts"]) > 96:
            return refuse(400, "invalid request: texts must have at most 96 elements")
        dims = int(body.get("output_dimension") or DEFAULT_DIMS)
        vectors = [vector(t, dims) for t in body["texts"]]
        return web.json_response(
            {
                "id": "emb-1",
                "embeddings": {"float": vectors},
                "texts": body["texts"],
                "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": 3 * len(vectors)}},
                "response_type": "embeddings_by_type",
            }
        )

    async def rerank(request: web.Request) -> web.Response:
        body = await read_json(request)
        state.record(request, body)
        if (failed := _failure(state, str(body.get("model")))) is not None:
            return refuse(failed[0], failed[1])
        scored = [{"index": i, "relevance_score": overlap(body["query"], d)} for i, d in enumerate(body["documents"])]
        scored.sort(key=lambda r: -r["relevance_score"])
        return web.json_response(
            {
                "id": "rr-1",
                "results": scored[: body.get("top_n") or None],
                "meta": {"billed_units": {"search_units": 1}},
            }
        )

    app.router.add_post("/v2/embed", embed)
    app.router.add_post("/v2/rerank", rerank)


def install_bedrock(app: web.Application, state: UpstreamState) -> None:
    async def invoke(request: web.Request) -> web.Response:
        raw = await request.read()
        model = request.match_info["model"]
        body = await read_json(request)
        state.record(request, body)
        problem = bedrock.check_auth(request, raw)
        if problem is not None:
            return bedrock.error_response(401, problem)
        if (failed := _failure(state, model)) is not None:
            return bedrock.error_response(failed[0], failed[1], failed[2])
        if model.startswith("amazon.titan-embed-text"):
            if set(body) - {"inputText", "dimensions", "normalize", "embeddingTypes"}:
                return bedrock.error_response(400, f"Malformed input request: extraneous keys {sorted(body)}")
            values = vector(body["inputText"], int(body.get("dimensions") or DEFAULT_DIMS))
            tokens = len(body["inputText"].split())
            return web.json_response(
                {"embedding": values, "inputTextTokenCount": tokens, "embeddingsByType": {"float": values}}
            )
        if model.startswith("cohere.embed"):
            if "model" in body or "input_type" not in body:
                return bedrock.error_response(400, "Malformed input request: input_type required, model not allowed")
            vectors = [vector(t) for t in body["texts"]]
            headers = {"X-Amzn-Bedrock-Input-Token-Count": str(sum(len(t.split()) for t in body["texts"]))}
            return web.json_response(
                {"id": "b-1", "embeddings": {"float": vectors}, "response_type": "embeddings_by_type"}, headers=headers
            )
        return bedrock.error_response(400, f"The provided model identifier {model} is invalid.")

    app.router.add_post("/model/{model}/invoke", invoke)


def install(app: web.Application, state: UpstreamState) -> None:
    install_openai(app, state)
    install_gemini(app, state)
    install_cohere(app, state)
    install_bedrock(app, state)
