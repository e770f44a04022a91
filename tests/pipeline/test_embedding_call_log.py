"""`app.embeddings` (what the knowledge service is given) writes each upstream call to the gateway's call log."""

from __future__ import annotations

import asyncio
import time

from portico.app import PorticoApp
from portico.config.schema import Settings


async def test_knowledge_path_calls_are_in_the_call_log() -> None:
    settings = Settings.model_validate({"storage": {"url": "sqlite:///:memory:"}, "logging": {"access_log": False}})
    app = PorticoApp(settings)
    await app.startup()
    try:
        vectors = await app.embeddings.embed("mock/embed", ["first chunk", "second chunk"])
        assert len(vectors) == 2 and len(vectors[0]) == 256
        ranked = await app.embeddings.rerank("mock/rerank", "second", ["first chunk", "second chunk"], 1)
        assert [index for index, _ in ranked] == [1]
        deadline = time.monotonic() + 5
        while True:
            records = {r.path: r for r in await app.logs.list(limit=10)}
            if {"knowledge:embeddings", "knowledge:rerank"} <= set(records) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.02)
        embed = records["knowledge:embeddings"]
        assert (embed.provider, embed.model, embed.status, embed.prompt_tokens) == ("mock", "embed", 200, 4)
        assert embed.requested_model == "mock/embed" and embed.attempts[0]["status"] == 200
        assert records["knowledge:rerank"].model == "rerank"
    finally:
        await app.shutdown()
