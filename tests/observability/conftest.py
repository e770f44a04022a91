"""Fixtures of the observability tests that read the call log back: each runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.conftest import Stack
from tests.gateway_server import GatewayThread
from tests.storage.conftest import drop_schema, postgres_url
from tests.storage.test_call_log_e2e import logged_settings
from tests.upstreams.server import UpstreamThread


@pytest.fixture(params=["sqlite", "postgresql"])
async def storage_url(request: pytest.FixtureRequest, tmp_path: Any) -> AsyncIterator[str]:
    """A fresh store: a SQLite file, or a schema of its own on this machine's PostgreSQL (dropped after)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'portico.db'}"
        return
    url = await postgres_url()  # skips, saying why, when PostgreSQL does not answer
    schema = f"portico_test_{uuid.uuid4().hex[:12]}"
    yield f"{url}?schema={schema}"
    await drop_schema(url, schema)


@pytest.fixture
def logged(storage_url: str, upstream_thread: UpstreamThread) -> Iterator[Stack]:
    """A gateway with the call log on, over `storage_url`."""
    upstream_thread.state.reset()
    with GatewayThread(logged_settings(upstream_thread.url, storage_url)) as gateway:
        yield Stack(gateway, upstream_thread)
