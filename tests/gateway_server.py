"""Run a real Portico gateway (uvicorn + httptools + the full app) in a background thread for HTTP tests."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

import uvicorn

from portico.app import PorticoApp
from portico.config.schema import Settings
from portico.http.server import build_config


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class GatewayThread:
    """`with GatewayThread(settings) as gw:` — `gw.url` is the gateway's base URL, `gw.app` the live app."""

    def __init__(self, settings: Settings | dict[str, Any]) -> None:
        if isinstance(settings, dict):  # tests keep nothing on disk unless they ask for it
            settings = {"storage": {"url": "sqlite:///:memory:"}, **settings}
        self.settings = settings if isinstance(settings, Settings) else Settings.model_validate(settings)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = PorticoApp(self.settings)
        config = build_config(
            self.app, self.settings.server, host="127.0.0.1", port=self.port, loop="asyncio", log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.run(self.server.serve())

    def __enter__(self) -> GatewayThread:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("gateway did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=10)
