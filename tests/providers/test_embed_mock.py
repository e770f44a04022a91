"""Properties of the `mock` provider's embeddings and rerank (`providers/mock_embed.py`)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from portico.core.embeddings import EmbeddingRequest, RerankRequest
from portico.providers import mock_embed


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))  # both are unit vectors


def test_same_text_same_vector_and_unit_length() -> None:
    a, b = mock_embed.vector("The quick brown fox"), mock_embed.vector("The quick brown fox")
    assert a == b and len(a) == mock_embed.DEFAULT_DIMENSIONS
    assert math.sqrt(sum(x * x for x in a)) == pytest.approx(1.0)


def test_vectors_are_the_same_in_another_process() -> None:
    """CRC-32, not Python's salted `hash()`: a vector stored by one worker matches a query embedded by another."""
    code = "from portico.providers.mock_embed import vector; print(repr(vector('stable across runs', 16)))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(other) == mock_embed.vector("stable across runs", 16)


@pytest.mark.parametrize(
    ("anchor", "similar", "dissimilar"),
    [
        ("the cat sat on the mat", "a cat sat on a mat", "quarterly tax filing deadlines"),
        ("invoice payment overdue", "overdue invoice payments", "hiking trails in the alps"),
        ("embedding models for retrieval", "retrieval with embedding model", "chocolate cake recipe"),
        ("Kubernetes pod restart", "restarting a kubernetes pod", "the french revolution"),
    ],
)
def test_similar_texts_are_closer_than_dissimilar_ones(anchor: str, similar: str, dissimilar: str) -> None:
    a, s, d = (mock_embed.vector(t) for t in (anchor, similar, dissimilar))
    assert cosine(a, s) > cosine(a, d) + 0.2


def test_dimensions_are_honoured_and_case_does_not_matter() -> None:
    result = mock_embed.embed(EmbeddingRequest(("Hello World", "hello world"), dimensions=64), "embed")
    assert [len(v) for v in result.vectors] == [64, 64] and result.vectors[0] == result.vectors[1]
    assert result.prompt_tokens == 4 and result.model == "embed"


def test_an_empty_text_has_a_unit_vector_too() -> None:
    empty = mock_embed.vector("")
    assert math.sqrt(sum(x * x for x in empty)) == pytest.approx(1.0) and empty == mock_embed.vector("  ")


def test_rerank_scores_are_in_0_1_best_first_and_cut_to_top_n() -> None:
    request = RerankRequest("red apple", ("green pear", "red apple", "an apple a day", "red"), top_n=3)
    result = mock_embed.rerank(request)
    assert [i for i, _ in result.results] == [1, 3, 2]
    scores = [s for _, s in result.results]
    assert scores[0] == 1.0 and all(0.0 <= s <= 1.0 for s in scores) and scores == sorted(scores, reverse=True)
    assert mock_embed.relevance("red apple", "green pear") == 0.0
    assert mock_embed.rerank(request).results == result.results
