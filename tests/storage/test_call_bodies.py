"""`request_logs.request_body`/`response_body` (migration 0010) on both backends: bodies come back as written, a
record without them stays null (and `as_json` leaves them out), and a call log at 0009 upgrades with its rows."""

from __future__ import annotations

import sqlalchemy as sa

from portico.storage import db as db_module
from portico.storage.db import Database, head_revision
from portico.storage.repos import RequestLogRepo
from tests.storage.conftest import make_record

REQUEST = '{"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "héllo [PII]"}]}'
RESPONSE = 'data: {"choices": [{"delta": {"content": "hi"}}]}\n\ndata: [DONE]\n\n' + "x" * 70_000


async def test_bodies_round_trip_and_absent_ones_stay_null(database: Database) -> None:
    repo = RequestLogRepo(database)
    kept, plain = make_record(1, request_body=REQUEST, response_body=RESPONSE), make_record(2)
    await repo.insert_many([kept, plain])
    back = {record.id: record for record in await repo.list(limit=10)}
    assert (back[kept.id].request_body, back[kept.id].response_body) == (REQUEST, RESPONSE)
    assert back[kept.id].as_json()["response_body"] == RESPONSE
    assert back[plain.id].request_body is back[plain.id].response_body is None
    assert "request_body" not in back[plain.id].as_json() and "response_body" not in back[plain.id].as_json()


def _downgrade(connection: sa.Connection, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(db_module.MIGRATIONS))
    config.attributes["connection"] = connection
    command.downgrade(config, revision)


async def test_a_call_log_at_0009_gains_the_columns_and_keeps_its_rows(database: Database) -> None:
    repo = RequestLogRepo(database)
    async with database.begin() as conn:
        await conn.run_sync(_downgrade, "0009_analytics_indexes")
        columns = {c["name"] for c in await conn.run_sync(lambda c: sa.inspect(c).get_columns("request_logs"))}
        assert "request_body" not in columns and "response_body" not in columns
        await conn.execute(
            sa.text(
                "INSERT INTO request_logs (id, created_at, request_id, path, dialect, status, stream, partial,"
                " prompt_tokens, completion_tokens, total_tokens, cached_tokens, reasoning_tokens, latency_ms,"
                " overhead_ms, attempts, metadata) VALUES ('old-1', :at, 'req-old', '/v1/chat/completions', 'openai',"
                " 200, false, false, 1, 2, 3, 0, 0, 1.0, 0.1, '[]', '{}')"
            ),
            {"at": make_record().created_at},
        )
        await conn.run_sync(db_module._upgrade)
        version = (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).scalar()
    assert version == head_revision() == "0010_call_bodies"
    old = await repo.get("req-old")
    assert old is not None and old.request_body is None and old.response_body is None
    await repo.insert_many([make_record(3, request_body="{}", response_body="{}")])
    new = await repo.get("req-3")
    assert new is not None and new.request_body == new.response_body == "{}"
