"""The admin app's routes get an `x-request-id` and an access log line, as the chat routes do (those write theirs
from the record hook, at no cost to the hot path): one ASGI wrapper that reads the status the app sends."""

from __future__ import annotations

import time

from portico.core.ids import time_ordered_id
from portico.http.asgi import ASGIApp, Message, Receive, Scope, Send
from portico.observability.access_log import AccessLog


def logged(app: ASGIApp, access_log: AccessLog | None) -> ASGIApp:
    async def wrapper(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = time_ordered_id()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        finally:
            if access_log is not None:
                latency_ms = (time.perf_counter() - started) * 1000
                access_log.write(scope["method"], scope["path"], status, latency_ms, request_id)

    return wrapper
