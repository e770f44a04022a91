"""Shared by the retrieval e2e tests: a gateway with its call log on, an upstream that speaks OpenAI chat and
embeddings (plus a `rewriter` provider whose answer the test scripts), and knowledge bases filled through the
admin API exactly as a user fills them."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

from tests.conftest import Stack, stack_settings
from tests.gateway_server import GatewayThread
from tests.upstreams import embeddings as embeddings_upstream
from tests.upstreams import openai as openai_upstream
from tests.upstreams.server import Installer, UpstreamState, UpstreamThread, read_json

EMBEDDING_MODEL = "text-embedding-3-small"
"""Served by the OpenAI mock's `/v1/embeddings`; its scripted failures make the embedding fail on demand."""
REFUNDS = "Refunds are processed within 14 days of receiving the returned item."
SHIPPING = "Shipping is free for every order above 50 euros, delivered by courier."
REWRITE_ANSWER = SHIPPING
"""What the `rewriter` model answers: a query whose embedding equals the shipping chunk's (cosine 1)."""


def install_rewriter(app: web.Application, state: UpstreamState) -> None:
    """`rewriter/...`: an OpenAI-compatible chat model that always answers `REWRITE_ANSWER` (recorded like the
    others, so a test sees what the gateway asked it)."""

    async def chat(request: web.Request) -> web.Response:
        body = await read_json(request)
        state.record(request, body)
        return web.json_response(
            {
                "id": "chatcmpl-rewrite",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model"),
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": REWRITE_ANSWER}, "finish_reason": "stop"}
                ],
                "usage": {"prompt_tokens": 20, "completion_tokens": 12, "total_tokens": 32},
            }
        )

    app.router.add_post("/rw/v1/chat/completions", chat)

    async def judge(request: web.Request) -> web.Response:
        """A webhook guardrail that passes everything and keeps what it was shown."""
        body = await read_json(request)
        state.record(request, body)
        return web.json_response({"verdict": True})

    app.router.add_post("/judge", judge)


@pytest.fixture(scope="module")
def kb_upstream() -> Iterator[UpstreamThread]:
    installers: list[Installer] = [openai_upstream.install, embeddings_upstream.install_openai, install_rewriter]
    with UpstreamThread(installers, UpstreamState()) as thread:
        yield thread


@pytest.fixture(scope="module")
def _kb_gateway(kb_upstream: UpstreamThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    url = f"sqlite:///{tmp_path_factory.mktemp('retrieval') / 'portico.db'}"
    settings = stack_settings(
        kb_upstream.url,
        storage={"url": url},
        logging={"request_log": True, "queue_size": 1000},
    )
    settings["providers"]["rewriter"] = {"type": "openai", "api_key": "sk-rw", "base_url": f"{kb_upstream.url}/rw/v1"}
    with GatewayThread(settings) as gateway:
        yield gateway


@pytest.fixture
def kb_stack(_kb_gateway: GatewayThread, kb_upstream: UpstreamThread) -> Iterator[Stack]:
    kb_upstream.state.reset()
    yield Stack(_kb_gateway, kb_upstream)
    kb_upstream.state.reset()


def new_kb(stack: Stack, **settings: Any) -> str:
    """A knowledge base with the refunds (team billing, 2024) and shipping (team logistics, 2022) documents,
    ingested: returns once both datasources are `completed`."""
    key = f"kb-{uuid.uuid4().hex[:8]}"
    created = stack.post(
        "/v1/admin/knowledge", {"key": key, "embedding_model": f"openai/{EMBEDDING_MODEL}", **settings}
    )
    assert created.status == 201, created.body
    for name, text, metadata in (
        ("refunds.txt", REFUNDS, {"team": "billing", "year": 2024}),
        ("shipping.md", SHIPPING, {"team": "logistics", "year": 2022}),
    ):
        file_type = name.rsplit(".", 1)[1]
        body = {"name": name, "text": text, "metadata": metadata, "file_type": file_type}
        added = stack.post(f"/v1/admin/knowledge/{key}/datasources", body)
        assert added.status in (200, 202), added.body
        _wait_ingested(stack, key, added.json()["id"])
    return key


def _wait_ingested(stack: Stack, key: str, datasource_id: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        found = stack.get(f"/v1/admin/knowledge/{key}/datasources/{datasource_id}")
        assert found.status == 200, found.body
        status = found.json()["status"]
        assert status != "failed", found.body
        if status == "completed":
            return
        assert time.monotonic() < deadline, f"datasource {datasource_id} still {status}"
        time.sleep(0.02)


def chat_bodies(stack: Stack, model: str = "gpt-4o") -> list[dict[str, Any]]:
    """The chat bodies the upstream received for `model` (embedding calls left out)."""
    return [
        r["body"]
        for r in stack.upstream.requests
        if isinstance(r["body"], dict) and r["body"].get("model") == model and "messages" in r["body"]
    ]
