"""`POST /v1/embeddings` over HTTP with the `openai` SDK, against mock upstreams in each provider's wire format."""

from __future__ import annotations

import base64
import json
import struct
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.conftest import KEY, Response, Stack, http
from tests.gateway_server import GatewayThread
from tests.upstreams import bedrock
from tests.upstreams import embeddings as upstream
from tests.upstreams import openai as openai_upstream
from tests.upstreams.server import UpstreamThread

TEXTS = ["the cat sat on the mat", "a dog in the fog", "tax rules for 2024"]


@pytest.fixture(scope="module")
def embed_stack() -> Iterator[Stack]:
    with UpstreamThread([upstream.install, openai_upstream.install]) as up:
        providers: dict[str, Any] = {
            "openai": {"api_key": "sk-upstream", "base_url": f"{up.url}/v1"},
            "backup": {"type": "openai", "api_key": "sk-backup", "base_url": f"{up.url}/v1"},
            "vllm": {"base_url": f"{up.url}/v1"},
            "azure": {"base_url": up.url, "api_key": "azure-key", "api_version": "2024-10-21"},
            "gemini": {"base_url": up.url, "api_key": "gemini-key"},
            "cohere": {"base_url": up.url, "api_key": "co-key"},
            "bedrock": {
                "base_url": up.url,
                "region": bedrock.REGION,
                "aws_access_key_id": bedrock.ACCESS_KEY,
                "aws_secret_access_key": bedrock.SECRET_KEY,
            },
            "groq": {"base_url": f"{up.url}/v1", "api_key": "gsk"},
            "anthropic": {"base_url": up.url, "api_key": "sk-ant"},
        }
        settings = {
            "auth": {"keys": [KEY]},
            "providers": providers,
            "logging": {"request_log": True},
            "pricing": {"models": {"openai/text-embedding-3-small": {"input": 0.02, "output": 0}}},
        }
        with GatewayThread(settings) as gateway:
            yield Stack(gateway, up)


@pytest.fixture
def stack(embed_stack: Stack) -> Iterator[Stack]:
    embed_stack.upstream.reset()
    yield embed_stack
    embed_stack.upstream.reset()


@pytest.fixture
def client(stack: Stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.gateway.url + "/v1", api_key=KEY, max_retries=0)


def close(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all(abs(x - y) < 1e-6 for x, y in zip(a, b, strict=True))


def record_of(stack: Stack, request_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while True:
        answer = http("GET", f"{stack.gateway.url}/v1/logs/{request_id}", None, {"authorization": f"Bearer {KEY}"})
        if answer.status == 200:
            found: dict[str, Any] = answer.json()
            record: dict[str, Any] = found.get("data", found)
            return record
        assert answer.status == 404 and time.monotonic() < deadline, answer.body
        time.sleep(0.02)


def decoded(embedding: list[float] | str) -> list[float]:
    if isinstance(embedding, list):
        return embedding
    raw = base64.b64decode(embedding)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


@pytest.mark.parametrize("encoding", ["default", "float", "base64"])
def test_openai_sdk_both_encodings(client: openai.OpenAI, stack: Stack, encoding: str) -> None:
    """The SDK's default asks for base64 and decodes it itself; an explicit `base64` hands the client the string."""
    extra: dict[str, Any] = {} if encoding == "default" else {"encoding_format": encoding}
    reply = client.embeddings.create(model="openai/text-embedding-3-small", input=TEXTS, **extra)
    assert [d.index for d in reply.data] == [0, 1, 2]
    assert isinstance(reply.data[0].embedding, str) == (encoding == "base64")
    for item, text in zip(reply.data, TEXTS, strict=True):
        # in input order though the upstream sent them reversed; float32 on the wire for base64
        assert close(decoded(item.embedding), upstream.vector(text))
    assert reply.model == "text-embedding-3-small"
    assert reply.usage.prompt_tokens == sum(len(t.split()) for t in TEXTS) == reply.usage.total_tokens
    sent = stack.upstream.requests[-1]
    assert sent["path"] == "/v1/embeddings" and sent["headers"]["Authorization"] == "Bearer sk-upstream"
    assert sent["body"] == {"model": "text-embedding-3-small", "input": TEXTS, "encoding_format": "float"}


def test_base64_is_little_endian_float32(stack: Stack) -> None:
    body = {"model": "openai/m", "input": "hello world", "encoding_format": "base64", "dimensions": 4}
    answer = stack.post("/v1/embeddings", body)
    assert answer.status == 200, answer.body
    raw = base64.b64decode(answer.json()["data"][0]["embedding"])
    assert len(raw) == 16
    assert close(list(struct.unpack("<4f", raw)), upstream.vector("hello world", 4))
    assert stack.upstream.requests[-1]["body"]["dimensions"] == 4


def test_call_record_has_path_tokens_cost_and_latency(stack: Stack) -> None:
    answer = stack.post(
        "/v1/embeddings",
        {"model": "openai/text-embedding-3-small", "input": TEXTS},
        headers={"x-request-id": "emb-record-1"},
    )
    assert answer.status == 200
    tokens = sum(len(t.split()) for t in TEXTS)
    assert float(answer.headers["x-portico-cost-usd"]) == pytest.approx(tokens * 0.02 / 1e6)
    record = record_of(stack, "emb-record-1")
    assert record["path"] == "/v1/embeddings" and record["status"] == 200
    assert record["provider"] == "openai" and record["model"] == "text-embedding-3-small"
    assert record["prompt_tokens"] == tokens and record["cost_usd"] == pytest.approx(tokens * 0.02 / 1e6)
    assert record["latency_ms"] > 0


def test_vllm_and_dimensions(client: openai.OpenAI, stack: Stack) -> None:
    reply = client.embeddings.create(model="vllm/BAAI/bge-m3", input="solo", dimensions=16)
    assert close(reply.data[0].embedding, upstream.vector("solo", 16))
    sent = stack.upstream.requests[-1]
    assert sent["body"]["model"] == "BAAI/bge-m3" and "Authorization" not in sent["headers"]


def test_azure_deployment_url_and_key(client: openai.OpenAI, stack: Stack) -> None:
    reply = client.embeddings.create(model="azure/my-embedder", input=TEXTS[:2])
    assert close(reply.data[1].embedding, upstream.vector(TEXTS[1]))
    sent = stack.upstream.requests[-1]
    assert sent["path"] == "/openai/deployments/my-embedder/embeddings"
    assert sent["query"] == {"api-version": "2024-10-21"} and sent["headers"]["api-key"] == "azure-key"


def test_gemini_batch_embed_contents(client: openai.OpenAI, stack: Stack) -> None:
    reply = client.embeddings.create(
        model="gemini/gemini-embedding-001", input=TEXTS, dimensions=12, extra_body={"input_type": "search_query"}
    )
    assert [close(d.embedding, upstream.vector(t, 12)) for d, t in zip(reply.data, TEXTS, strict=True)] == [True] * 3
    sent = stack.upstream.requests[-1]
    assert sent["path"] == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    first = sent["body"]["requests"][0]
    assert first == {
        "model": "models/gemini-embedding-001",
        "content": {"parts": [{"text": TEXTS[0]}]},
        "taskType": "RETRIEVAL_QUERY",
        "outputDimensionality": 12,
    }


def test_gemini_batches_above_100(stack: Stack) -> None:
    texts = [f"text number {i}" for i in range(230)]
    answer = stack.post("/v1/embeddings", {"model": "gemini/text-embedding-004", "input": texts})
    assert answer.status == 200, answer.body
    data = answer.json()["data"]
    assert [d["index"] for d in data] == list(range(230))
    assert close(data[229]["embedding"], upstream.vector(texts[229]))
    sizes = sorted(len(r["body"]["requests"]) for r in stack.upstream.requests)
    assert sizes == [30, 100, 100]
    assert answer.headers["x-portico-attempts"] == "3"


def test_cohere_v2_embed_with_input_type_and_batches(stack: Stack) -> None:
    texts = [f"doc {i}" for i in range(100)]
    answer = stack.post("/v1/embeddings", {"model": "cohere/embed-v4.0", "input": texts})
    assert answer.status == 200, answer.body
    body = answer.json()
    assert close(body["data"][99]["embedding"], upstream.vector("doc 99"))
    assert body["usage"]["prompt_tokens"] == 300
    calls = stack.upstream.requests
    assert [len(c["body"]["texts"]) for c in calls] == [96, 4]
    assert calls[0]["body"]["input_type"] == "search_document" and calls[0]["body"]["embedding_types"] == ["float"]
    assert calls[0]["headers"]["Authorization"] == "Bearer co-key"


def test_bedrock_titan_and_cohere_invoke_model(client: openai.OpenAI, stack: Stack) -> None:
    titan = client.embeddings.create(model="bedrock/amazon.titan-embed-text-v2:0", input=TEXTS, dimensions=8)
    assert [close(d.embedding, upstream.vector(t)) for d, t in zip(titan.data, TEXTS, strict=True)] == [True] * 3
    assert titan.usage.prompt_tokens == sum(len(t.split()) for t in TEXTS)
    titan_calls = [r for r in stack.upstream.requests if "titan" in r["path"]]
    assert len(titan_calls) == 3 and titan_calls[0]["path"] == "/model/amazon.titan-embed-text-v2:0/invoke"
    assert {tuple(sorted(c["body"])) for c in titan_calls} == {("dimensions", "inputText", "normalize")}
    cohere = client.embeddings.create(
        model="bedrock/cohere.embed-english-v3", input=TEXTS, extra_body={"input_type": "search_query"}
    )
    assert close(cohere.data[2].embedding, upstream.vector(TEXTS[2]))
    assert cohere.usage.prompt_tokens == sum(len(t.split()) for t in TEXTS)  # from Bedrock's token-count header
    assert stack.upstream.requests[-1]["body"]["input_type"] == "search_query"


def test_mock_provider_offline(client: openai.OpenAI) -> None:
    one = client.embeddings.create(model="mock/embed", input=["same text", "same text", "other words"])
    assert len(one.data[0].embedding) == 256 and one.data[0].embedding == one.data[1].embedding
    small = client.embeddings.create(model="mock/embed", input="same text", dimensions=32)
    assert len(small.data[0].embedding) == 32


def test_fallback_on_upstream_failure(stack: Stack) -> None:
    stack.upstream.fail_with(503, "overloaded", model="primary-model")
    body = {"model": "openai/primary-model", "input": "x y", "fallbacks": [{"model": "backup/text-embedding-3-small"}]}
    answer = stack.post("/v1/embeddings", body)
    assert answer.status == 200, answer.body
    assert answer.headers["x-portico-provider"] == "backup" and answer.headers["x-portico-attempts"] == "2"
    assert [r["headers"]["Authorization"] for r in stack.upstream.requests] == [
        "Bearer sk-upstream",
        "Bearer sk-backup",
    ]


def test_retry_then_success(stack: Stack) -> None:
    stack.upstream.fail_with(429, "slow down", times=1)
    body = {"model": "openai/text-embedding-3-small", "input": "x", "retry": {"count": 2, "on_codes": [429]}}
    answer = stack.post("/v1/embeddings", body)
    assert answer.status == 200 and len(stack.upstream.requests) == 2


def test_cache_hit_skips_the_upstream(stack: Stack) -> None:
    body = {"model": "openai/text-embedding-3-small", "input": ["cache me"], "cache": {"type": "exact_match"}}
    first, second = stack.post("/v1/embeddings", body), stack.post("/v1/embeddings", body)
    assert first.headers["x-portico-cache"] == "MISS" and second.headers["x-portico-cache"] == "HIT"
    assert first.json()["data"] == second.json()["data"] and len(stack.upstream.requests) == 1


def error_of(answer: Response) -> dict[str, Any]:
    found: dict[str, Any] = answer.json()["error"]
    return found


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"model": "openai/m"}, "input"),
        ({"input": "x"}, "model"),
        ({"model": "openai/m", "input": []}, "input"),
        ({"model": "openai/m", "input": ""}, "input"),
        ({"model": "openai/m", "input": ["ok", ""]}, "input.1"),
        ({"model": "openai/m", "input": [1, 2, 3]}, "input.0"),
        ({"model": "openai/m", "input": [[1, 2]]}, "input.0"),
        ({"model": "openai/m", "input": "x", "encoding_format": "int8"}, "encoding_format"),
        ({"model": "openai/m", "input": "x", "dimensions": 0}, "dimensions"),
    ],
)
def test_bad_input_is_422(stack: Stack, body: dict[str, Any], where: str) -> None:
    answer = stack.post("/v1/embeddings", body)
    assert answer.status == 422, answer.body
    assert error_of(answer)["param"] == where
    assert answer.json()["detail"][0]["loc"][1:] == [int(p) if p.isdigit() else p for p in where.split(".")]
    assert stack.upstream.requests == []


def test_token_arrays_are_refused_clearly(stack: Stack) -> None:
    answer = stack.post("/v1/embeddings", {"model": "openai/m", "input": [[1, 2]]})
    assert "token arrays are not supported" in error_of(answer)["message"]


def test_unknown_model_and_provider(stack: Stack) -> None:
    assert stack.post("/v1/embeddings", {"model": "nope/m", "input": "x"}).status == 400
    answer = stack.post("/v1/embeddings", {"model": "no-provider", "input": "x"})
    assert answer.status == 400 and "provider/model" in error_of(answer)["message"]


@pytest.mark.parametrize("model", ["anthropic/claude-sonnet-4", "groq/llama"])
def test_provider_without_embeddings_is_400(stack: Stack, model: str) -> None:
    answer = stack.post("/v1/embeddings", {"model": model, "input": "x"})
    assert answer.status == 400
    assert error_of(answer)["code"] == "embeddings_not_supported"
    assert f"provider '{model.split('/', maxsplit=1)[0]}' does not offer embeddings" in error_of(answer)["message"]
    assert stack.upstream.requests == []


@pytest.mark.parametrize(
    ("model", "provider"),
    [
        ("openai/text-embedding-3-small", "openai"),
        ("gemini/gemini-embedding-001", "gemini"),
        ("cohere/embed-v4.0", "cohere"),
        ("bedrock/amazon.titan-embed-text-v2:0", "bedrock"),
    ],
)
def test_upstream_5xx_is_502_naming_the_upstream(stack: Stack, model: str, provider: str) -> None:
    stack.upstream.fail_with(500, "the embedder broke")
    answer = stack.post("/v1/embeddings", {"model": model, "input": "x"})
    assert answer.status == 502, answer.body
    error = error_of(answer)
    assert error["provider"] == provider and error["upstream_status"] == 500
    assert "the embedder broke" in error["message"]


def test_auth_and_malformed_json(stack: Stack) -> None:
    assert stack.post("/v1/embeddings", {"model": "mock/embed", "input": "x"}, key=None).status == 401
    assert stack.post_raw("/v1/embeddings", b"{not json").status == 400


def test_route_is_documented(stack: Stack) -> None:
    spec = json.loads(stack.get("/openapi.json").body)
    assert "/v1/embeddings" in spec["paths"]
