"""Retrieval quality, small and fast: recall@5 of each search type on a slice of the generated question–answer set
(`bench/knowledge_corpus.py`), through a real gateway's admin API with the mock embedder. The full set, and a
real embedding model, are `bench/knowledge_eval.py`; its figures are in the note.

The floors are what this deterministic setup measures, rounded down: a ranking change that loses answers fails."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from bench.knowledge_corpus import build

from tests.conftest import KEY, http
from tests.gateway_server import GatewayThread

AUTH = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}


@pytest.fixture(scope="module")
def gateway() -> Iterator[GatewayThread]:
    with GatewayThread({"auth": {"keys": [KEY]}, "logging": {"request_log": False}}) as gw:
        yield gw


def admin(gateway: GatewayThread, method: str, path: str, body: object = None) -> dict[str, object]:
    answer = http(method, gateway.url + path, json.dumps(body).encode() if body is not None else None, AUTH)
    assert answer.status in {200, 201, 202}, answer.body
    result: dict[str, object] = answer.json()
    return result


def test_recall_at_5_per_search_type(gateway: GatewayThread) -> None:
    docs, questions = build(per_template=6)
    admin(gateway, "POST", "/v1/admin/knowledge", {"key": "qa", "embedding_model": "mock/embed"})
    for doc in docs:
        body: dict[str, object] = {"name": f"{doc.doc_id}.txt", "text": doc.text, "metadata": {"doc_id": doc.doc_id}}
        admin(gateway, "POST", "/v1/admin/knowledge/qa/datasources", body)
    deadline = time.monotonic() + 60
    while True:
        states = admin(gateway, "GET", "/v1/admin/knowledge/qa/datasources")["data"]
        assert isinstance(states, list)
        if len(states) == len(docs) and all(s["status"] == "completed" for s in states):
            break
        assert time.monotonic() < deadline, states
        time.sleep(0.1)

    recall: dict[tuple[str, str], float] = {}
    for search_type in ("vector_search", "keyword_search", "hybrid_search"):
        for kind in ("named", "described"):
            asked = [q for q in questions if q.kind == kind]
            hits = 0
            for question in asked:
                body = {
                    "query": question.text,
                    "top_k": 5,
                    "threshold": 0,
                    "search_type": search_type,
                }
                found = admin(gateway, "POST", "/v1/admin/knowledge/qa/search", body)["data"]
                assert isinstance(found, list) and len(found) <= 5
                hits += question.doc_id in [hit["metadata"]["doc_id"] for hit in found]
            recall[search_type, kind] = hits / len(asked)

    assert recall["keyword_search", "named"] == 1.0, recall  # the entity's name is a rare word in one document
    assert recall["vector_search", "named"] >= 0.7, recall  # measured 0.75 (24 questions of each kind)
    assert recall["hybrid_search", "named"] >= 0.8, recall  # measured 0.83
    assert min(recall[t, "described"] for t in ("vector_search", "keyword_search", "hybrid_search")) >= 0.4, recall
