"""`portico check-config --strict`: after the static check, connect to what the config names (the database,
each Redis, each provider's base URL) and print one line per check. Nothing is written anywhere.

A check passes when the other side answers: SELECT 1 for a database, PING for Redis, a TCP (and TLS) handshake for
a provider (no request is sent, so no key leaves the machine). Every check has a deadline; URLs print without
passwords.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from portico.config.schema import REDIS_SCHEMES, Settings
from portico.config_check import provider_configs

TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Check:
    what: str
    target: str
    probe: Callable[[], Awaitable[None]]


def checks_for(settings: Settings) -> list[Check]:
    checks = [_database_check(settings)]
    redis_urls: dict[str, list[str]] = {}
    for key, url in (
        ("cache", settings.cache.url),
        ("routing state", settings.routing.state_url),
        ("notify", settings.storage.notify_url),
    ):
        if url and url.startswith(REDIS_SCHEMES):
            redis_urls.setdefault(url, []).append(key)
    checks += [
        Check(f"redis ({', '.join(keys)})", safe_url(url), _redis_probe(url)) for url, keys in redis_urls.items()
    ]
    for name, config in sorted(provider_configs(settings).items()):
        if config.base_url:
            checks.append(Check(f"provider {name}", safe_url(config.base_url), _tcp_probe(config.base_url)))
    return checks


async def run_checks(checks: list[Check], out: Callable[[str], None]) -> int:
    """Every check runs (at once, each bounded); one line each, in order. The number that failed."""
    results = await asyncio.gather(*(_timed(check) for check in checks))
    failed = 0
    for check, (error, elapsed_ms) in zip(checks, results, strict=True):
        if error is None:
            out(f"ok    {check.what}: {check.target} ({elapsed_ms:.0f} ms)")
        else:
            failed += 1
            out(f"FAIL  {check.what}: {check.target}: {error}")
    return failed


async def _timed(check: Check) -> tuple[str | None, float]:
    start = time.perf_counter()
    try:
        await asyncio.wait_for(check.probe(), TIMEOUT_SECONDS)
    except TimeoutError:
        return f"no answer within {TIMEOUT_SECONDS:g} s", 0.0
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}".strip(), 0.0
    return None, (time.perf_counter() - start) * 1000


def safe_url(url: str) -> str:
    """The URL without its password (and without a query, which may hold tokens)."""
    parts = urlsplit(url)
    if parts.password is None and not parts.query:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    user = f"{parts.username}@" if parts.username else ""
    return parts._replace(netloc=user + netloc, query="").geturl()


def _database_check(settings: Settings) -> Check:
    url = settings.storage.url
    if url is None:
        from portico.config.load import portico_home

        home = portico_home()

        async def probe_home() -> None:
            _writable_dir(home, create=True)

        return Check("database (sqlite)", str(home / "portico.db"), probe_home)
    from portico.storage.db import Database

    async def probe() -> None:
        import sqlalchemy as sa

        database = Database(url, connect_timeout=TIMEOUT_SECONDS, statement_timeout=TIMEOUT_SECONDS)
        if database.backend == "sqlite" and not database.memory:
            _writable_dir(Path(database.url.database or ".").parent)
            return
        try:
            async with database.begin() as connection:
                await connection.execute(sa.text("SELECT 1"))
        finally:
            await database.close()

    return Check("database", safe_url(url), probe)


def _writable_dir(directory: Path, *, create: bool = False) -> None:
    if create and not directory.exists():
        return  # `serve` creates $PORTICO_HOME
    if not directory.is_dir():
        raise FileNotFoundError(f"directory {directory} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise PermissionError(f"directory {directory} is not writable")


def _redis_probe(url: str) -> Callable[[], Awaitable[None]]:
    async def probe() -> None:
        from redis import asyncio as aioredis

        client = aioredis.Redis.from_url(url, socket_connect_timeout=TIMEOUT_SECONDS, socket_timeout=TIMEOUT_SECONDS)
        try:
            await client.ping()
        finally:
            await client.aclose()

    return probe


def _tcp_probe(base_url: str) -> Callable[[], Awaitable[None]]:
    async def probe() -> None:
        parts = urlsplit(base_url)
        secure = parts.scheme == "https"
        port = parts.port or (443 if secure else 80)
        context = ssl.create_default_context() if secure else None
        _reader, writer = await asyncio.open_connection(
            parts.hostname, port, ssl=context, server_hostname=parts.hostname if secure else None
        )
        writer.close()
        await writer.wait_closed()

    return probe
