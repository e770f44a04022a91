"""The `mock` provider's embeddings and rerank: deterministic, offline, and similar where the texts are similar.

A text's vector is its lower-cased words and their character trigrams hashed (CRC-32, stable across processes and
machines, unlike `hash()`) into a fixed number of signed buckets, then L2-normalised: the same text always gives
the same vector, and texts sharing words and word pieces have a higher cosine than texts that share none. Rerank
scores are the query's word recall in the document blended with their trigram overlap, in [0, 1].
"""

from __future__ import annotations

import math
import re
import zlib
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache

from portico.core.embeddings import EmbeddingRequest, EmbeddingResult, RerankRequest, RerankResult

DEFAULT_DIMENSIONS = 256
_WORD = re.compile(r"\w+", re.UNICODE)
_WORD_WEIGHT = 1.0
_TRIGRAM_WEIGHT = 0.5


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def trigrams(word: str) -> Iterable[str]:
    padded = f" {word} "
    return (padded[i : i + 3] for i in range(len(padded) - 2))


@lru_cache(maxsize=65536)
def _features(word: str) -> tuple[tuple[int, float], ...]:
    """A word's hashed features (itself and its trigrams) with their signed weights, computed once per word."""
    named = [("w:" + word, _WORD_WEIGHT), *(("t:" + gram, _TRIGRAM_WEIGHT) for gram in trigrams(word))]
    found = []
    for feature, weight in named:
        hashed = zlib.crc32(feature.encode("utf-8"))
        found.append((hashed, weight if hashed & 0x80000000 else -weight))
    return tuple(found)


def vector(text: str, dimensions: int = DEFAULT_DIMENSIONS) -> list[float]:
    """The unit vector of `text` (an empty text has its own fixed vector, never the zero vector)."""
    values = [0.0] * dimensions
    for word, count in Counter(words(text) or ["\x00empty"]).items():
        for hashed, weight in _features(word):
            values[hashed % dimensions] += weight * count
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def embed(request: EmbeddingRequest, model: str) -> EmbeddingResult:
    dimensions = request.dimensions or DEFAULT_DIMENSIONS
    vectors = [vector(text, dimensions) for text in request.texts]
    tokens = sum(max(len(words(text)), 1) for text in request.texts)
    return EmbeddingResult(vectors, tokens, model)


def relevance(query: str, document: str) -> float:
    """Half the share of the query's words found in the document, half the Jaccard overlap of their trigrams."""
    query_words, document_words = set(words(query)), set(words(document))
    if not query_words or not document_words:
        return 0.0
    recall = len(query_words & document_words) / len(query_words)
    query_grams = {g for w in query_words for g in trigrams(w)}
    document_grams = {g for w in document_words for g in trigrams(w)}
    jaccard = len(query_grams & document_grams) / len(query_grams | document_grams)
    return round((recall + jaccard) / 2, 6)


def rerank(request: RerankRequest) -> RerankResult:
    scored = [(index, relevance(request.query, doc)) for index, doc in enumerate(request.documents)]
    best = sorted(scored, key=lambda pair: (-pair[1], pair[0]))
    tokens = len(words(request.query)) * len(request.documents) + sum(len(words(d)) for d in request.documents)
    return RerankResult(best[: request.top_n] if request.top_n is not None else best, tokens)
