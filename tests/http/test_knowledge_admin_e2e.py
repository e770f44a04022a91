"""The knowledge-base admin API over HTTP, on both storage engines (a SQLite file, the real PostgreSQL): bases,
datasources uploaded as files (multipart) and as JSON text, background ingest through the `mock` provider's
embeddings, search of each type with filters, search_options, rerank; every bad input with its status; a failing
embedding model; and a gateway stopped mid-ingest that resumes on the next start without losing or duplicating."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import KEY
from tests.gateway_server import GatewayThread
from tests.storage.conftest import drop_schema, postgres_url

ADMIN = "/v1/admin/knowledge"
AUTH = {"authorization": f"Bearer {KEY}"}
LIMIT = 20_000
DOC_MD = "# Cats\n\nCats are small domesticated felines. A cat purrs and sleeps most of the day.\n"
LONG = "\n\n".join(f"Paragraph {i}: " + " ".join(f"term{i}x{j}" for j in range(12)) for i in range(14))


def _settings(url: str, **knowledge: Any) -> dict[str, Any]:
    return {
        "auth": {"keys": [KEY]},
        "providers": {"mock": {"models": ["embed", "rerank", "other", "error-503", "slow-150"]}},
        "storage": {"url": url, "sync_interval_seconds": 0.2},
        "logging": {"request_log": False},
        "knowledge": {"max_upload_bytes": LIMIT, **knowledge},
    }


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def storage_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('kb') / 'portico.db'}"
        return
    url = asyncio.run(postgres_url())
    schema = f"portico_test_{secrets.token_hex(6)}"
    yield f"{url}?schema={schema}"
    asyncio.run(drop_schema(url, schema))


@pytest.fixture(scope="module")
def client(storage_url: str) -> Iterator[httpx.Client]:
    with GatewayThread(_settings(storage_url)) as gateway, httpx.Client(base_url=gateway.url, headers=AUTH) as http:
        yield http


def _base(http: httpx.Client, **fields: Any) -> dict[str, Any]:
    body = {"key": f"kb-{secrets.token_hex(4)}", "embedding_model": "mock/embed", "chunk_size": 300, **fields}
    answer = http.post(ADMIN, json=body)
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def _done(http: httpx.Client, key: str, datasource_id: str, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        source: dict[str, Any] = http.get(f"{ADMIN}/{key}/datasources/{datasource_id}").json()
        if source["status"] in ("completed", "failed") or time.monotonic() > deadline:
            return source
        time.sleep(0.05)


def _upload(http: httpx.Client, key: str, name: str, content: bytes, **meta: Any) -> httpx.Response:
    data = {"metadata": json.dumps(meta)} if meta else None
    return http.post(f"{ADMIN}/{key}/datasources", files={"file": (name, content)}, data=data)


def test_bases_create_read_list_patch_delete(client: httpx.Client) -> None:
    base = _base(client, top_k=3, rerank={"model": "mock/rerank", "threshold": 0.1})
    key = base["key"]
    assert base["id"].startswith("knowledge_") and base["top_k"] == 3 and base["retrieval_type"] == "hybrid_search"
    assert base["rerank"] == {"model": "mock/rerank", "threshold": 0.1, "top_k": None}
    assert client.get(f"{ADMIN}/{key}").json() == base
    assert key in [b["key"] for b in client.get(ADMIN).json()["data"]]
    again = client.post(ADMIN, json={"key": key, "embedding_model": "mock/embed"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "knowledge_base_exists"
    patched = client.patch(f"{ADMIN}/{key}", json={"top_k": 7, "rerank": None})
    assert patched.status_code == 200 and patched.json()["top_k"] == 7 and patched.json()["rerank"] is None
    assert client.patch(f"{ADMIN}/{key}", json={"chunk_overlap": 300}).status_code == 422  # ≥ chunk_size
    assert client.patch(f"{ADMIN}/{key}", json={"embedding_model": "mock/other"}).status_code == 200  # still empty
    assert _upload(client, key, "a.txt", b"some text").status_code == 202
    locked = client.patch(f"{ADMIN}/{key}", json={"embedding_model": "mock/embed"})
    assert locked.status_code == 409 and locked.json()["error"]["param"] == "embedding_model"
    assert client.delete(f"{ADMIN}/{key}").status_code == 204
    for answer in (
        client.get(f"{ADMIN}/{key}"),
        client.delete(f"{ADMIN}/{key}"),
        client.get(f"{ADMIN}/{key}/datasources"),
        client.post(f"{ADMIN}/{key}/search", json={"query": "x"}),
    ):
        assert answer.status_code == 404
        assert answer.json()["error"]["code"] == "knowledge_base_not_found"
        assert answer.json()["error"]["param"] == "knowledge_id"
    assert httpx.get(f"{client.base_url}{ADMIN}").status_code == 401  # no key


def test_upload_ingest_and_search_through_the_api(client: httpx.Client) -> None:
    key = _base(client)["key"]
    first = _upload(client, key, "cats.md", DOC_MD.encode(), team="pets", year=2021)
    assert first.status_code == 202, first.text
    queued = first.json()
    assert queued["status"] in ("queued", "processing", "completed") and queued["file_type"] == "md"
    text = client.post(
        f"{ADMIN}/{key}/datasources",
        json={"name": "rockets", "text": "Rockets burn kerosene to reach orbit.", "metadata": {"team": "space"}},
    )
    assert text.status_code == 202 and text.json()["file_type"] == "txt"
    same = _upload(client, key, "copy.md", DOC_MD.encode())
    assert same.status_code == 200 and same.json()["id"] == queued["id"]  # the same bytes: the first datasource
    for source in (queued, text.json()):
        done = _done(client, key, source["id"])
        assert done["status"] == "completed" and done["chunks_done"] == done["chunks_total"] >= 1, done
    assert len(client.get(f"{ADMIN}/{key}/datasources").json()["data"]) == 2
    [chunk] = client.get(f"{ADMIN}/{key}/datasources/{queued['id']}/chunks").json()["data"]
    assert chunk["index"] == 0 and "purrs" in chunk["text"] and chunk["page_number"] is None
    assert chunk["metadata"] == {
        "team": "pets",
        "year": 2021,
        "file_name": "cats.md",
        "file_type": "md",
        "page_number": None,
        "datasource_id": queued["id"],
    }

    for search_type in ("vector_search", "keyword_search", "hybrid_search"):
        found = client.post(f"{ADMIN}/{key}/search", json={"query": "cat purrs", "search_type": search_type})
        assert found.status_code == 200, found.text
        hits = found.json()["data"]
        assert hits[0]["metadata"]["file_name"] == "cats.md", search_type
        assert 0 < hits[0]["search_score"] <= 1 and "vector" not in hits[0] and "rerank_score" not in hits[0]
    filtered = client.post(
        f"{ADMIN}/{key}/search",
        json={"query": "cat purrs", "search_type": "vector_search", "filter_by": {"team": {"eq": "space"}}},
    ).json()["data"]
    assert [h["metadata"]["file_name"] for h in filtered] == ["rockets"]
    either = client.post(
        f"{ADMIN}/{key}/search",
        json={"query": "orbit", "filter_by": {"or": [{"year": {"gte": 2021}}, {"team": {"in": ["space"]}}]}},
    ).json()["data"]
    assert {h["metadata"]["file_name"] for h in either} == {"cats.md", "rockets"}
    shaped = client.post(
        f"{ADMIN}/{key}/search",
        json={
            "query": "cat",
            "search_options": {"include_vectors": True, "include_metadata": False, "include_scores": False},
        },
    ).json()["data"]
    assert set(shaped[0]) == {"id", "text", "vector"} and len(shaped[0]["vector"]) == 256
    reranked = client.post(
        f"{ADMIN}/{key}/search", json={"query": "cat purrs", "rerank_config": {"model": "mock/rerank", "top_k": 1}}
    ).json()["data"]
    assert len(reranked) == 1 and reranked[0]["rerank_score"] > 0 and "purrs" in reranked[0]["text"]

    chunk_path = f"{ADMIN}/{key}/datasources/{queued['id']}/chunks/{chunk['id']}"
    assert client.delete(chunk_path).status_code == 204
    assert client.delete(chunk_path).status_code == 404
    assert client.delete(f"{ADMIN}/{key}/datasources/{queued['id']}").status_code == 204
    assert client.get(f"{ADMIN}/{key}/datasources/{queued['id']}").status_code == 404


def test_bad_uploads_and_bad_searches_are_refused_with_nothing_stored(client: httpx.Client) -> None:
    key = _base(client)["key"]
    path = f"{ADMIN}/{key}/datasources"
    png = _upload(client, key, "image.png", b"\x89PNG\r\n\x1a\n....")
    assert png.status_code == 415 and png.json()["error"]["code"] == "unsupported_media_type"
    plain = client.post(path, content=b"hello", headers={"content-type": "text/plain"})
    assert plain.status_code == 415
    big = _upload(client, key, "big.txt", b"x" * (LIMIT + 1))
    assert big.status_code == 413 and big.json()["error"]["code"] == "payload_too_large"
    big_text = client.post(path, json={"name": "big", "text": "y" * (LIMIT + 1)})
    assert big_text.status_code == 413
    empty = _upload(client, key, "empty.txt", b"")
    assert empty.status_code == 400 and empty.json()["error"]["code"] in ("empty_upload", "empty_document")
    blank = client.post(path, json={"name": "blank", "text": "   "})
    assert blank.status_code == 400
    no_file = client.post(path, files={"other": ("a.txt", b"x")})
    assert no_file.status_code == 422 and no_file.json()["error"]["param"] == "file"
    bad_meta = client.post(path, files={"file": ("a.txt", b"x")}, data={"metadata": "[1]"})
    assert bad_meta.status_code == 422 and bad_meta.json()["error"]["param"] == "metadata"
    missing = client.post(path, json={"text": "no name"})
    assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == ["body", "name"]
    assert client.get(path).json()["data"] == []  # none of them stored anything

    search = f"{ADMIN}/{key}/search"
    bad = client.post(search, json={"query": "x", "filter_by": {"and": [{"a": {"eq": 1}}, {"year": {"gt": "x"}}]}})
    assert bad.status_code == 422, bad.text
    assert bad.json()["error"]["param"] == "filter_by.and.1.year.gt"
    assert bad.json()["detail"][0]["loc"] == ["body", "filter_by", "and", 1, "year", "gt"]
    for flt, where in (
        ({"year": {"between": 1}}, "filter_by.year.between"),
        ({"year": {}}, "filter_by.year"),
        ({"year": {"gt": 1, "lt": 3}}, "filter_by.year"),
        ({"or": [{"and": []}]}, "filter_by.or.0.and"),
        ({"tags": {"in": []}}, "filter_by.tags.in"),
    ):
        answer = client.post(search, json={"query": "x", "filter_by": flt})
        assert (answer.status_code, answer.json()["error"]["param"]) == (422, where), flt
    assert client.post(search, json={"query": "x", "top_k": 0}).status_code == 422
    assert client.post(search, json={"query": "x", "search_type": "fuzzy"}).status_code == 422


def test_a_failing_embedding_model_fails_the_datasource_naming_the_upstream_error(client: httpx.Client) -> None:
    key = _base(client, embedding_model="mock/error-503")["key"]
    source = _upload(client, key, "doc.txt", b"some words to embed").json()
    failed = _done(client, key, source["id"])
    assert failed["status"] == "failed" and "503" in failed["error"], failed
    assert client.get(f"{ADMIN}/{key}/datasources/{source['id']}/chunks").json()["data"] == []
    search = client.post(f"{ADMIN}/{key}/search", json={"query": "words", "search_type": "vector_search"})
    assert search.status_code >= 500 and "503" in search.json()["error"]["message"]


def test_a_gateway_stopped_mid_ingest_resumes_on_the_next_start(storage_url: str) -> None:
    settings = _settings(storage_url, embed_batch_size=2)
    with GatewayThread(settings) as gateway, httpx.Client(base_url=gateway.url, headers=AUTH, timeout=30) as http:
        key = _base(http, embedding_model="mock/slow-150", chunk_size=120, chunk_overlap=0)["key"]
        source = _upload(http, key, "long.txt", LONG.encode()).json()
        deadline = time.monotonic() + 20
        while (now := http.get(f"{ADMIN}/{key}/datasources/{source['id']}").json())["chunks_done"] < 4:
            assert time.monotonic() < deadline, now
            time.sleep(0.02)
    assert now["status"] == "processing" and now["chunks_done"] < now["chunks_total"]

    with GatewayThread(settings) as gateway, httpx.Client(base_url=gateway.url, headers=AUTH, timeout=30) as http:
        done = _done(http, key, source["id"])
        assert done["status"] == "completed" and done["chunks_done"] == done["chunks_total"] > 4
        chunks = http.get(f"{ADMIN}/{key}/datasources/{source['id']}/chunks?limit=1000").json()["data"]
        assert sorted(c["index"] for c in chunks) == list(range(done["chunks_total"]))  # none lost, none twice
        assert len({c["text"] for c in chunks}) == len(chunks)
