"""The knowledge service on both storage engines (SQLite file, the real PostgreSQL): ingest, the three search
types, hybrid fusion order, threshold, rerank, every filter operator against a Python oracle, idempotent uploads,
a failing embedder, and a restart mid-ingest that neither loses nor duplicates chunks."""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from portico.core.errors import NotFound, RequestError, UnsupportedMediaType
from portico.core.knowledge import KnowledgeBase, RerankSettings, SearchQuery
from portico.knowledge.filters import matches, parse_filter
from portico.knowledge.search import fuse
from portico.knowledge.service import KnowledgeService
from portico.providers import mock_embed
from portico.storage.db import Database
from portico.storage.synced import StateSync
from portico.storage.tables import knowledge_chunks
from tests.knowledge.kb_service_helpers import MockEmbedder
from tests.storage.conftest import drop_schema, postgres_url

DOCS = {
    "cats.txt": "Cats are small domesticated felines. A cat purrs and sleeps most of the day.",
    "rockets.txt": "Rockets burn liquid oxygen and kerosene to reach orbit around the earth.",
    "bread.txt": "Bread dough rises with yeast; bake the loaf in a hot oven until golden.",
    "rivers.txt": "Rivers carry water from mountains to the sea, carving valleys on the way.",
}


@pytest.fixture(params=["sqlite", "postgresql"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        database = Database(f"sqlite:///{tmp_path / 'kb.db'}")
        await database.migrate()
        yield database
        await database.close()
        return
    url = await postgres_url()
    schema = f"portico_test_{secrets.token_hex(6)}"
    database = Database(f"{url}?schema={schema}")
    try:
        await database.migrate()
        yield database
    finally:
        await database.close()
        await drop_schema(url, schema)


async def _service(db: Database, embedder: MockEmbedder, **kw: Any) -> KnowledgeService:
    sync = StateSync(db, interval=60)
    service = KnowledgeService(db, sync, embedder, **kw)
    await sync.start()
    await service.start()
    return service


async def _filled(db: Database, embedder: MockEmbedder, **base: Any) -> KnowledgeService:
    service = await _service(db, embedder)
    await service.create_base(KnowledgeBase(key="kb", embedding_model="mock/embed", chunk_size=200, **base))
    for name, text in DOCS.items():
        await service.add_datasource("kb", name, text.encode(), metadata={"topic": name.split(".")[0]})
    await service.ingest.idle()
    return service


def _names(found: list[Any]) -> list[str]:
    return [r.metadata["file_name"] for r in found]


async def test_each_search_type_finds_the_matching_document(db: Database) -> None:
    embedder = MockEmbedder()
    service = await _filled(db, embedder)
    assert set(embedder.input_types) == {None}  # passages are embedded as documents
    sources = await service.datasources("kb")
    assert {s.status for s in sources} == {"completed"} and all(s.chunks_done == s.chunks_total == 1 for s in sources)
    for search_type in ("vector_search", "keyword_search", "hybrid_search"):
        found = await service.search("kb", SearchQuery("why does a cat purr", search_type=search_type, top_k=2))
        assert _names(found)[0] == "cats.txt", search_type
        assert all(0.0 <= r.search_score <= 1.0 for r in found)
        assert [r.search_score for r in found] == sorted((r.search_score for r in found), reverse=True)
        assert found[0].metadata["topic"] == "cats" and found[0].metadata["page_number"] is None
    assert embedder.input_types[-2:] == ["search_query", "search_query"]  # vector and hybrid embed the query as one
    keyword = await service.search("kb", SearchQuery("kerosene", search_type="keyword_search"))
    assert _names(keyword) == ["rockets.txt"]  # no other document holds the word
    by_id = await service.search(service.base("kb").id, SearchQuery("kerosene", search_type="keyword_search"))  # type: ignore[union-attr]
    assert _names(by_id) == ["rockets.txt"]
    with pytest.raises(NotFound) as missing:
        await service.search("nope", SearchQuery("x"))
    assert (missing.value.code, missing.value.param) == ("knowledge_base_not_found", "knowledge_id")
    await service.close()


async def test_hybrid_is_the_reciprocal_rank_fusion_of_the_two_rankings(db: Database) -> None:
    service = await _filled(db, MockEmbedder())
    text = "water in the oven and the sea"
    vector = await service.search("kb", SearchQuery(text, search_type="vector_search", top_k=10))
    keyword = await service.search("kb", SearchQuery(text, search_type="keyword_search", top_k=10))
    hybrid = await service.search("kb", SearchQuery(text, search_type="hybrid_search", top_k=10))
    expected = fuse([[int(r.chunk_id) for r in vector], [int(r.chunk_id) for r in keyword]])
    assert [(int(r.chunk_id), round(r.search_score, 6)) for r in hybrid] == [(i, round(s, 6)) for i, s in expected]
    assert {r.chunk_id for r in hybrid} == {r.chunk_id for r in vector} | {r.chunk_id for r in keyword}
    assert fuse([[1, 2], [1, 3]])[0] == (1, 1.0)  # first in both rankings
    await service.close()


async def test_threshold_top_k_and_their_precedence(db: Database) -> None:
    service = await _filled(db, MockEmbedder(), top_k=1, threshold=0.0, retrieval_type="vector_search")
    assert len(await service.search("kb", SearchQuery("cat"))) == 1  # the base's top_k
    every = await service.search("kb", SearchQuery("cat", top_k=10))
    assert len(every) == 4
    cut = every[0].search_score
    assert every[1].search_score < cut
    kept = await service.search("kb", SearchQuery("cat", top_k=10, threshold=cut))
    assert [r.chunk_id for r in kept] == [r.chunk_id for r in every if r.search_score >= cut]
    assert len(kept) == 1 and kept[0].search_score == cut
    await service.close()


async def test_rerank_reorders_and_keeps_only_scores_above_its_threshold(db: Database) -> None:
    embedder = MockEmbedder()
    query = "bake bread in the oven"
    relevance = sorted((mock_embed.relevance(query, text) for text in DOCS.values()), reverse=True)
    cut = relevance[1]  # strictly greater: only the best document passes
    rerank = RerankSettings(model="mock/rerank", threshold=cut)
    service = await _filled(db, embedder, top_k=4, rerank=rerank, retrieval_type="vector_search")
    found = await service.search("kb", SearchQuery("bake bread in the oven"))
    assert embedder.reranks == [("mock/rerank", "bake bread in the oven", 4)]  # base top_k, AMB-43
    assert _names(found) == ["bread.txt"] and found[0].rerank_score == relevance[0] > cut
    loose = await service.search("kb", SearchQuery(query, rerank=RerankSettings(model="mock/rerank", threshold=0.0)))
    assert [r.rerank_score for r in loose] == [s for s in relevance if s > 0]  # reordered by rerank score
    override = await service.search(
        "kb", SearchQuery("bake bread", rerank=RerankSettings(model="mock/other", top_k=1, threshold=0.0))
    )
    assert embedder.reranks[-1] == ("mock/other", "bake bread", 1) and len(override) == 1
    await service.close()


FIELDS: list[dict[str, Any]] = [
    {"year": 2020, "lang": "en", "score": 0.5, "draft": False},
    {"year": 2021, "lang": "fr", "score": 1.5, "draft": True},
    {"year": 2022, "lang": "en"},
    {"year": "2020", "lang": "de", "draft": True},  # a string year: never a number
    {"score": 3, "draft": False},
    {},
    {"year": 2019.5, "lang": "EN", "note": None},
]
FILTERS: list[dict[str, Any]] = [
    {"year": {"eq": 2020}},
    {"year": {"eq": "2020"}},
    {"lang": {"eq": "en"}},
    {"draft": {"eq": True}},
    {"draft": {"eq": False}},
    {"year": {"ne": 2020}},
    {"lang": {"ne": "en"}},
    {"draft": {"ne": True}},
    {"year": {"gt": 2020}},
    {"year": {"gte": 2020}},
    {"year": {"lt": 2021}},
    {"year": {"lte": 2019.5}},
    {"score": {"gt": 1}},
    {"lang": {"in": ["en", "fr"]}},
    {"year": {"in": [2021, "2020", True]}},
    {"lang": {"nin": ["en"]}},
    {"draft": {"nin": [True]}},
    {"year": {"exists": True}},
    {"year": {"exists": False}},
    {"note": {"exists": True}},
    {"year": {"gte": 2020}, "lang": {"eq": "en"}},
    {"and": [{"year": {"gte": 2020}}, {"draft": {"ne": True}}]},
    {"or": [{"lang": {"eq": "fr"}}, {"score": {"gte": 3}}, {"year": {"exists": False}}]},
    {"or": [{"year": {"lt": 2021}, "lang": {"eq": "en"}}, {"draft": {"eq": True}}]},
    {},
]


async def test_every_filter_operator_and_combination_matches_the_oracle(db: Database) -> None:
    service = await _service(db, MockEmbedder())
    await service.create_base(KnowledgeBase(key="kb", embedding_model="mock/embed", retrieval_type="vector_search"))
    for i, fields in enumerate(FIELDS):
        await service.add_datasource(
            "kb", f"doc{i}.txt", f"document number {i} about filters".encode(), metadata=fields
        )
    await service.ingest.idle()
    for flt in FILTERS:
        expected = {f"doc{i}.txt" for i, fields in enumerate(FIELDS) if matches(parse_filter(flt), fields)}
        for search_type in ("vector_search", "keyword_search", "hybrid_search"):
            found = await service.search("kb", SearchQuery("document", top_k=50, filter=flt, search_type=search_type))
            assert set(_names(found)) == expected, (flt, search_type)
    assert matches(parse_filter({"year": {"gt": 2020}}), {"year": 2021})  # the oracle is not vacuous
    assert not matches(parse_filter({"year": {"gt": 2020}}), {"year": "2021"})
    await service.close()


async def test_the_same_bytes_twice_give_the_first_datasource(db: Database) -> None:
    service = await _filled(db, MockEmbedder())
    again, created = await service.add_datasource("kb", "other-name.txt", DOCS["cats.txt"].encode())
    assert not created and again.name == "cats.txt"
    assert len(await service.datasources("kb")) == 4
    with pytest.raises(UnsupportedMediaType):
        await service.add_datasource("kb", "image.png", b"\x89PNG....")
    with pytest.raises(RequestError) as empty:
        await service.add_datasource("kb", "empty.txt", b"  \n")
    assert empty.value.http_status == 400
    assert len(await service.datasources("kb")) == 4  # nothing stored for either
    await service.close()


async def _chunk_count(db: Database, datasource_id: str | None = None) -> tuple[int, int]:
    """(chunks, distinct content hashes)."""
    query = sa.select(sa.func.count(), sa.func.count(sa.distinct(knowledge_chunks.c.content_hash)))
    if datasource_id is not None:
        query = query.where(knowledge_chunks.c.datasource_id == datasource_id)
    async with db.begin() as conn:
        total, distinct = (await conn.execute(query)).one()
    return int(total), int(distinct)


LONG = "\n\n".join(f"Paragraph {i}: " + " ".join(f"word{i}x{j}" for j in range(12)) for i in range(40))


async def test_a_failing_embedder_fails_the_datasource_with_nothing_stored(db: Database) -> None:
    embedder = MockEmbedder()
    embedder.fail_after = 10
    service = await _service(db, embedder, batch_size=4)
    await service.create_base(KnowledgeBase(key="kb", embedding_model="mock/embed", chunk_size=100, chunk_overlap=0))
    source, _ = await service.add_datasource("kb", "long.txt", LONG.encode())
    await service.ingest.idle()
    failed = await service.datasource("kb", source.id)
    assert failed is not None and failed.status == "failed"
    assert failed.error is not None and "model overloaded" in failed.error and "mock" in failed.error
    assert "503" in failed.error
    assert await _chunk_count(db) == (0, 0)  # two batches had been stored: removed
    embedder.fail_after = None
    retried, created = await service.add_datasource("kb", "long.txt", LONG.encode())  # uploading again retries
    assert created
    await service.ingest.idle()
    done = await service.datasource("kb", retried.id)
    assert done is not None and done.status == "completed" and done.chunks_done == done.chunks_total > 10
    assert len(await service.datasources("kb")) == 1
    await service.close()


class _Stalling(MockEmbedder):
    """Embeds `allow` texts, then waits forever (a gateway stopped mid-ingest)."""

    def __init__(self, allow: int) -> None:
        super().__init__()
        self.allow = allow

    async def embed(self, model: str, texts: Any, input_type: str | None = None) -> list[list[float]]:
        if self.embedded + len(texts) > self.allow:
            await asyncio.Event().wait()
        return await super().embed(model, texts, input_type)


async def test_a_restart_mid_ingest_resumes_without_loss_or_duplicates(db: Database) -> None:
    first = await _service(db, _Stalling(allow=12), batch_size=4)
    await first.create_base(KnowledgeBase(key="kb", embedding_model="mock/embed", chunk_size=100, chunk_overlap=0))
    source, _ = await first.add_datasource("kb", "long.txt", LONG.encode())
    for _ in range(200):
        stored, _ = await _chunk_count(db)
        if stored == 12:
            break
        await asyncio.sleep(0.02)
    assert await _chunk_count(db) == (12, 12)
    await first.close()  # stopped mid-ingest: the lease is given back
    half = await first.repo.datasource_by_id(source.id)
    assert half is not None and half.status == "processing" and half.chunks_done == 12

    embedder = MockEmbedder()
    second = await _service(db, embedder, batch_size=4)  # a new start resumes it
    await second.ingest.idle()
    done = await second.datasource("kb", source.id)
    assert done is not None and done.status == "completed"
    total, distinct = await _chunk_count(db, source.id)
    assert total == distinct == done.chunks_total == done.chunks_done > 12
    assert embedder.embedded == total - 12  # only what was missing was embedded
    indexes = [c.index for c in await second.chunks("kb", source.id, 1000, 0) or []]
    assert indexes == list(range(total))
    await second.close()


async def test_chunks_list_delete_and_base_delete_remove_everything(db: Database) -> None:
    service = await _filled(db, MockEmbedder())
    source = (await service.datasources("kb"))[0]
    listed = await service.chunks("kb", source.id, 10, 0)
    assert listed and listed[0].text == DOCS[source.name]
    assert await service.delete_chunk("kb", source.id, listed[0].id)
    assert not await service.delete_chunk("kb", source.id, listed[0].id)
    assert source.name not in _names(await service.search("kb", SearchQuery("x " + DOCS[source.name], top_k=10)))
    assert await service.delete_datasource("kb", source.id)
    assert len(await service.datasources("kb")) == 3
    assert await service.delete_base("kb")
    assert await _chunk_count(db) == (0, 0)
    assert not await service.delete_base("kb")
    async with db.begin() as conn:  # the keyword index follows (SQLite's FTS5 triggers)
        if db.backend == "sqlite":
            left = (await conn.execute(sa.text("SELECT count(*) FROM knowledge_chunks_fts"))).scalar()
            assert left == 0
    await service.close()


def test_fusion_keeps_a_one_sided_hit_at_half() -> None:
    fused = dict(fuse([[1, 2, 3], [4]]))
    assert fused[1] == pytest.approx(0.5) and fused[4] == pytest.approx(0.5)
    assert list(itertools.islice((i for i, _ in fuse([[1, 2], [2, 1]])), 2)) in ([1, 2], [2, 1])


async def test_two_workers_see_each_others_bases_and_chunks(db: Database) -> None:
    if db.memory:
        pytest.skip("an in-memory database is private to one process")
    one, two = await _service(db, MockEmbedder()), await _service(db, MockEmbedder())
    await one.create_base(KnowledgeBase(key="kb", embedding_model="mock/embed", retrieval_type="vector_search"))
    assert (await two.require("kb")).base.id == one.base("kb").id  # type: ignore[union-attr]
    assert await two.search("kb", SearchQuery("cat")) == []  # worker two caches the empty base
    await one.add_datasource("kb", "cats.txt", DOCS["cats.txt"].encode())
    await one.ingest.idle()
    assert _names(await two.search("kb", SearchQuery("cat"))) == ["cats.txt"]  # its cached vectors were stale
    await one.close()
    await two.close()


async def test_a_database_upgraded_by_alembic_has_the_keyword_index_too(tmp_path: Path) -> None:
    """Migration 0007 builds the FTS5 table and its triggers itself (an existing database never sees tables.py)."""
    from portico.storage import db as db_module

    upgraded = Database(f"sqlite:///{tmp_path / 'old.db'}")
    async with upgraded.begin() as conn:
        await conn.run_sync(db_module._upgrade)
    service = await _service(upgraded, MockEmbedder())
    await service.create_base(KnowledgeBase(key="kb", embedding_model="mock/embed"))
    source, _ = await service.add_datasource("kb", "rockets.txt", DOCS["rockets.txt"].encode())
    await service.ingest.idle()
    assert _names(await service.search("kb", SearchQuery("kerosene", search_type="keyword_search"))) == ["rockets.txt"]
    assert await service.delete_datasource("kb", source.id)
    assert await service.search("kb", SearchQuery("kerosene", search_type="keyword_search")) == []
    await service.close()
    await upgraded.close()
