"""The pure embed/rerank translations of each adapter: bodies out, answers back, malformed answers refused."""

from __future__ import annotations

import orjson
import pytest

from portico.config.schema import ProviderConfig
from portico.core.embeddings import EmbeddingRequest, RerankRequest
from portico.core.errors import UpstreamProtocolError
from portico.providers import bedrock_embed, cohere_embed, gemini_embed, openai_embed
from portico.providers.openai_compatible import OpenAICompatibleProvider


def test_openai_body_asks_for_floats_and_only_what_was_given() -> None:
    body = orjson.loads(openai_embed.embeddings_body(EmbeddingRequest(("a",)), "m"))
    assert body == {"model": "m", "input": ["a"], "encoding_format": "float"}
    full = EmbeddingRequest(("a", "b"), dimensions=3, input_type="search_query", user="u-1")
    assert orjson.loads(openai_embed.embeddings_body(full, "m")) == {
        "model": "m",
        "input": ["a", "b"],
        "encoding_format": "float",
        "dimensions": 3,
        "user": "u-1",
    }


def test_openai_answers_are_put_back_in_input_order_and_counted() -> None:
    data = {"data": [{"index": 1, "embedding": [2.0]}, {"index": 0, "embedding": [1.0]}], "usage": {"prompt_tokens": 5}}
    result = openai_embed.parse_embeddings(data, "m", 2)
    assert result.vectors == [[1.0], [2.0]] and result.prompt_tokens == 5 and result.model == "m"
    with pytest.raises(ValueError, match="1 embeddings for 2 inputs"):
        openai_embed.parse_embeddings({"data": [{"index": 0, "embedding": [1.0]}]}, "m", 2)


def test_rerank_results_are_validated_normalised_and_cut() -> None:
    assert openai_embed.ranked([(0, 0.2), (1, 0.9), (2, 0.9)], 3, 2) == [(1, 0.9), (2, 0.9)]
    squashed = openai_embed.ranked([(0, -3.0), (1, 5.0)], 2, None)
    assert [i for i, _ in squashed] == [1, 0] and all(0 < s < 1 for _, s in squashed)
    with pytest.raises(IndexError):
        openai_embed.ranked([(3, 0.5)], 3, None)


def test_a_malformed_answer_is_the_upstreams_protocol_error() -> None:
    provider = OpenAICompatibleProvider("vllm", ProviderConfig(base_url="http://x"))
    with pytest.raises(UpstreamProtocolError, match="vllm returned a embeddings answer that is not valid"):
        provider.parse_guarded(
            lambda d: openai_embed.parse_embeddings(d, "m", 1), {"object": "list"}, "embeddings answer"
        )


def test_cohere_bodies_and_both_answer_shapes() -> None:
    request = EmbeddingRequest(("a",), dimensions=256)
    assert cohere_embed.embed_payload(request, "embed-v4.0") == {
        "texts": ["a"],
        "input_type": "search_document",
        "embedding_types": ["float"],
        "model": "embed-v4.0",
        "output_dimension": 256,
    }
    assert "model" not in cohere_embed.embed_payload(request, None)
    by_type = {"embeddings": {"float": [[0.5]]}, "meta": {"billed_units": {"input_tokens": 2}}}
    assert cohere_embed.parse_embed(by_type, "m", 1).prompt_tokens == 2
    assert cohere_embed.parse_embed({"embeddings": [[0.5]]}, "m", 1).vectors == [[0.5]]  # embeddings_floats
    rerank = cohere_embed.rerank_payload(RerankRequest("q", ("d1", "d2"), top_n=1), "rerank-v3.5")
    assert rerank == {"model": "rerank-v3.5", "query": "q", "documents": ["d1", "d2"], "top_n": 1}


def test_gemini_batch_names_the_model_in_every_request() -> None:
    payload = gemini_embed.batch_payload(EmbeddingRequest(("a", "b"), input_type="clustering"), "models/m")
    assert [r["model"] for r in payload["requests"]] == ["models/m", "models/m"]
    assert payload["requests"][1] == {
        "model": "models/m",
        "content": {"parts": [{"text": "b"}]},
        "taskType": "CLUSTERING",
    }
    with pytest.raises(ValueError):
        gemini_embed.parse_batch({"embeddings": [{"values": [1.0]}]}, "m", 2)


def test_bedrock_titan_generations_and_cohere_token_header() -> None:
    request = EmbeddingRequest(("a",), dimensions=256)
    assert bedrock_embed.titan_payload("a", request, "amazon.titan-embed-text-v1") == {"inputText": "a"}
    v2 = bedrock_embed.titan_payload("a", request, "amazon.titan-embed-text-v2:0")
    assert v2 == {"inputText": "a", "normalize": True, "dimensions": 256}
    assert bedrock_embed.parse_titan({"embedding": [0.1], "inputTextTokenCount": 3}) == ([0.1], 3)
    result = bedrock_embed.parse_cohere(
        {"embeddings": {"float": [[1.0]]}}, {"X-Amzn-Bedrock-Input-Token-Count": "7"}, "m", 1
    )
    assert result.prompt_tokens == 7
    assert bedrock_embed.is_cohere("cohere.embed-multilingual-v3") and not bedrock_embed.is_cohere("amazon.titan")
