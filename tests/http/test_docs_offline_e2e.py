"""`/docs` (Swagger UI) and `/redoc` render the chat endpoints in a headless browser that can reach nothing but
the gateway: their scripts and styles come from the package, not from a CDN."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import http
from tests.gateway_server import GatewayThread

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")


def render(url: str, profile: Path) -> str:
    assert CHROMIUM is not None
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        # No name resolves but the loopback address: a page that needs a CDN renders without it, or not at all.
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
        "--virtual-time-budget=10000",
        "--dump-dom",
        url,
    ]
    return subprocess.run(command, check=True, capture_output=True, text=True, timeout=90).stdout


def test_docs_pages_render_the_chat_endpoints_offline(tmp_path: Path) -> None:
    with GatewayThread({}) as gw:
        for page in ("docs", "redoc"):
            html = http("GET", f"{gw.url}/{page}").body.decode()
            assert not re.search(r"https?://(?!127\.0\.0\.1)", re.sub(r"<a [^>]*>", "", html)), html
        swagger = render(f"{gw.url}/docs", tmp_path / "a")
        paths = set(re.findall(r'class="opblock-summary-path" data-path="([^"]+)"', swagger))
        assert {"/v1/chat/completions", "/v2/router/chat/completions", "/health/live"} <= paths, paths
        redoc = render(f"{gw.url}/redoc", tmp_path / "b")
        assert "/v1/chat/completions" in redoc and "/v2/router/chat/completions" in redoc
