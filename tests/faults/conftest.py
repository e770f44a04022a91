"""Fixtures for fault tests: the real PostgreSQL behind a `TcpProxy`, in a schema of its own per test."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.faults.tcp_proxy import TcpProxy
from tests.storage.conftest import drop_schema, postgres_url


@dataclass
class ProxiedPostgres:
    proxy: TcpProxy
    direct_url: str
    """The server itself, for the test's own checks."""
    schema: str

    @property
    def url(self) -> str:
        """What the gateway uses: through the proxy, in the test's schema."""
        direct = self.direct_url.removeprefix("postgresql://")
        user, _, rest = direct.partition("@")
        return f"postgresql://{user}@127.0.0.1:{self.proxy.port}/{rest.partition('/')[2]}?schema={self.schema}"


@pytest.fixture
def proxied_postgres() -> Iterator[ProxiedPostgres]:
    """Skips when PostgreSQL does not answer at 127.0.0.1:5432."""
    direct = asyncio.run(postgres_url())
    schema = f"portico_fault_{secrets.token_hex(6)}"
    try:
        with TcpProxy("127.0.0.1", 5432) as proxy:
            yield ProxiedPostgres(proxy, direct, schema)
    finally:
        asyncio.run(drop_schema(direct, schema))
