"""`TcpProxy`: a loopback TCP proxy whose faults a test switches at runtime (pass, refuse, hang, drop).

`with TcpProxy("127.0.0.1", 5432) as proxy:` connect to `127.0.0.1:proxy.port`; `proxy.mode("hang")` and so on.
The proxy runs its own event loop in a daemon thread; leaving the block closes every socket and joins the thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from typing import Literal

Mode = Literal["pass", "refuse", "hang", "drop"]
_CHUNK = 65536
_CALL_TIMEOUT = 5.0


class _Pipe:
    """One client connection and, unless it was accepted in a black hole, its upstream connection."""

    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        self.hole = False
        """Once set, bytes read on either side are thrown away and the sockets stay open: a half-open peer."""

    def writers(self) -> list[asyncio.StreamWriter]:
        return [w for w in (self.client, self.upstream) if w is not None]


class TcpProxy:
    """Forwards `127.0.0.1:port` to `target_host:target_port`, with faults on demand.

    - `pass`: forward (new connections; connections that were black-holed stay so, as their streams are corrupt).
    - `refuse`: stop listening (new connections are refused) and reset the open ones: the server is down.
    - `hang`: every open and new connection becomes a black hole: accepted, nothing forwarded either way.
    - `drop`: reset every open connection once; new ones are forwarded (the mode stays `pass`).
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.current: Mode = "pass"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._pipes: set[_Pipe] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def __enter__(self) -> TcpProxy:
        self._thread.start()
        self._call(self._listen())
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._call(self._close_all())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=_CALL_TIMEOUT)
            self._loop.close()

    def mode(self, mode: Mode) -> None:
        if mode not in ("pass", "refuse", "hang", "drop"):
            raise ValueError(f"unknown proxy mode {mode!r}")
        self._call(self._switch(mode))

    @property
    def connections(self) -> int:
        """Client connections currently open through the proxy."""
        return len(self._pipes)

    def _call(self, coro: object) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(_CALL_TIMEOUT)  # type: ignore[arg-type]

    async def _switch(self, mode: Mode) -> None:
        if mode == "refuse":
            await self._stop_listening()
            self._reset_all()
        elif mode == "drop":
            self._reset_all()
            mode = "pass" if self.current != "hang" else "hang"
        elif mode == "hang":
            for pipe in self._pipes:
                pipe.hole = True
        if mode in ("pass", "hang") and self._server is None:
            await self._listen()
        self.current = mode

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop_listening(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1):
                    await server.wait_closed()

    def _reset_all(self) -> None:
        for pipe in list(self._pipes):
            for writer in pipe.writers():
                _reset(writer)
        self._pipes.clear()

    async def _close_all(self) -> None:
        await self._stop_listening()
        self._reset_all()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pipe = _Pipe(writer)
        self._pipes.add(pipe)
        try:
            if self.current == "hang":
                pipe.hole = True
            else:
                try:
                    up_reader, pipe.upstream = await asyncio.open_connection(*self.target)
                except OSError:
                    _reset(writer)
                    return
                self._spawn(self._forward(pipe, up_reader, writer))
            await self._forward(pipe, reader, pipe.upstream)
        finally:
            self._pipes.discard(pipe)
            for w in pipe.writers():
                w.close()

    def _spawn(self, coro: object) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _forward(self, pipe: _Pipe, reader: asyncio.StreamReader, writer: asyncio.StreamWriter | None) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await reader.read(_CHUNK):
                if pipe.hole or writer is None:
                    continue
                writer.write(data)
                await writer.drain()
        if not pipe.hole:
            for w in pipe.writers():
                w.close()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (linger 0), as a crashed server or a dropped link would."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
