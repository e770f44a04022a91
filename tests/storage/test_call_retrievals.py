"""`request_logs.retrievals` (migration 0008) on both backends: a request's retrievals come back as written, and a
request that named no knowledge base stays null (not an empty list)."""

from __future__ import annotations

from portico.storage.db import Database
from portico.storage.repos import RequestLogRepo
from tests.storage.conftest import make_record

FOUND = (
    {
        "knowledge_id": "kb-1",
        "chunk_id": "17",
        "datasource_id": "ds-1",
        "search_score": 0.8125,
        "rerank_score": 0.5,
        "preview": "Refunds are processed within 14 days",
    },
    {
        "knowledge_id": "kb-2",
        "chunk_id": "3",
        "datasource_id": "ds-9",
        "search_score": 0.25,
        "rerank_score": None,
        "preview": "",
    },
)


async def test_retrievals_round_trip_and_none_stays_null(database: Database) -> None:
    repo = RequestLogRepo(database)
    with_found = make_record(1, retrievals=FOUND)
    searched_nothing = make_record(2, retrievals=())
    plain = make_record(3)
    await repo.insert_many([with_found, searched_nothing, plain])
    back = {record.id: record for record in await repo.list(limit=10)}
    assert [dict(found) for found in back[with_found.id].retrievals or ()] == list(FOUND)
    assert back[with_found.id].as_json()["retrievals"] == list(FOUND)
    empty = back[searched_nothing.id].retrievals
    assert empty is not None and list(empty) == [], "searched, found nothing: [], not null"
    assert back[plain.id].retrievals is None and back[plain.id].as_json()["retrievals"] is None
