"""The access log: one JSON line per request (method, path, status, latency, request id) in the shape of every
other log line (`observability/logging.py`: ts, level, logger, message), written off the request path.

A request costs a tuple appended to a list; the lines are formatted and written in batches at most
`FLUSH_SECONDS` later, one `write` per `PIPE_BUF` bytes. A write happens only when the descriptor can take it
without blocking (a stderr pipe nobody reads must never stall the event loop); lines that cannot be written are
dropped and counted. Paths are the route's (no query string), so there is nothing to redact.
"""

from __future__ import annotations

import asyncio
import os
import select
import sys
import time
from datetime import UTC, datetime
from typing import IO

import orjson

LOGGER = "portico.access"
FLUSH_SECONDS = 0.1
CHUNK = select.PIPE_BUF
"""A pipe that polls writable takes this many bytes without blocking."""

Entry = tuple[float, str, str, int, float, str]


class AccessLog:
    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream
        self._pending: list[Entry] = []
        self._scheduled = False
        self.dropped = 0
        """Lines not written because the stream was not ready for them."""

    def write(self, method: str, path: str, status: int, latency_ms: float, request_id: str) -> None:
        self._pending.append((time.time(), method, path, status, latency_ms, request_id))
        if not self._scheduled:
            self._scheduled = True
            try:
                asyncio.get_running_loop().call_later(FLUSH_SECONDS, self.flush)
            except RuntimeError:  # no loop (a direct call): write now
                self.flush()

    def flush(self) -> None:
        self._scheduled = False
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        data = "".join(_lines(pending))
        stream = self._stream or sys.stderr
        try:
            fd = stream.fileno()
        except (AttributeError, OSError, ValueError):  # a stream without a descriptor (captured in tests)
            stream.write(data)
            stream.flush()
            return
        self._write_ready(fd, data.encode())

    def close(self) -> None:
        self.flush()

    def _write_ready(self, fd: int, data: bytes) -> None:
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        offset = 0
        while offset < len(data):
            end = min(len(data), offset + CHUNK)
            if end < len(data):  # whole lines per write, so lines of several workers never interleave
                end = data.rfind(b"\n", offset, end) + 1 or end
            try:
                if not poller.poll(0):
                    raise BlockingIOError
                offset += os.write(fd, data[offset:end])
            except OSError:
                self.dropped += data.count(b"\n", offset)
                return


def _lines(entries: list[Entry]) -> list[str]:
    """The JSON lines; the date part of `ts` is formatted once per second, not per line."""
    out: list[str] = []
    second, prefix = -1, ""
    for now, method, path, status, latency_ms, request_id in entries:
        if int(now) != second:
            second = int(now)
            prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        if path.isascii() and path.isprintable() and '"' not in path and "\\" not in path:
            text = path
        else:
            text = orjson.dumps(path).decode()[1:-1]
        millis = str(int((now - second) * 1000) + 1000)[1:]  # no format specs: they cost more than the rest
        out.append(
            f'{{"ts":"{prefix}{millis}+00:00","level":"INFO","logger":"{LOGGER}",'
            f'"message":"{method} {text} {status}","method":"{method}","path":"{text}","status":{status},'
            f'"latency_ms":{round(latency_ms, 3)},"request_id":"{request_id}"}}\n'
        )
    return out
