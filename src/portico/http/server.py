"""The HTTP server: uvicorn + httptools, guarded so that no client can hold the gateway's sockets for free.

`build_config` is the one place the server is assembled (`portico serve` and the test gateway both use it). Each
connection must deliver a request head within `header_timeout_seconds` and its body within `body_timeout_seconds`;
above `max_connections` the oldest connections with no request in progress are closed. The guard costs nothing per
request: one sweep per server tick reads the state uvicorn keeps anyway and times each phase from when it first saw
it, so a timeout fires between its value and its value plus one tick (a quarter of the shorter timeout, at most 1 s).
"""

from __future__ import annotations

import asyncio
import errno
import heapq
import logging
import resource
import signal
import socket
import sys
from dataclasses import dataclass
from typing import Any

import orjson
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState
from uvicorn.supervisors import Multiprocess

from portico.config.schema import ServerConfig
from portico.observability.startup import STARTUP_FAILURE

log = logging.getLogger("portico.server")

_SILENT, _HEAD, _BODY, _TRICKLE = 0, 1, 2, 3
"""What a client owes: its first request (nothing received), the rest of a head, the rest of a body, or nothing
useful while bytes that start no request (stray CRLFs, the tail of a body already answered) keep it awake."""


@dataclass(frozen=True, slots=True)
class ServerLimits:
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections: int = 1024


def default_max_connections() -> int:
    """Three quarters of this process's open-file limit: the rest stays for upstream sockets, storage and logs."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return 65536
    return max(16, soft * 3 // 4)


def limits_from(server: ServerConfig) -> ServerLimits:
    return ServerLimits(
        header_timeout=server.header_timeout_seconds,
        body_timeout=server.body_timeout_seconds,
        max_connections=server.max_connections or default_max_connections(),
    )


@dataclass
class GuardStats:
    """What the guard did since start (read by tests and worth exporting as metrics)."""

    header_timeouts: int = 0
    body_timeouts: int = 0
    evicted: int = 0
    refused: int = 0


class ConnectionGuard:
    """Per-server state: the connection count, the periodic deadline sweep and the eviction policy.

    What it knows of each connection lives here, not on the protocol: uvicorn's protocol already has 28 attributes,
    and past CPython's 30 shared dict keys every attribute read on it, per request, gets slower (measured)."""

    def __init__(self, limits: ServerLimits, loop: asyncio.AbstractEventLoop, connections: set[Any]) -> None:
        self.limits = limits
        self.loop = loop
        self.connections: set[HttpToolsProtocol] = connections
        self.stats = GuardStats()
        self.debts: dict[HttpToolsProtocol, tuple[object, float]] = {}
        """Per connection: the phase in which the client was last seen owing bytes, and since when."""
        self.dropped: set[HttpToolsProtocol] = set()
        """Closed by the guard, not yet gone: not counted against the limit any more."""
        self.tick = min(1.0, max(0.05, min(limits.header_timeout, limits.body_timeout) / 4))
        self._sweep: asyncio.TimerHandle | None = None

    def opened(self, conn: HttpToolsProtocol) -> None:
        self.debts[conn] = (conn, self.loop.time())
        if len(self.connections) - len(self.dropped) > self.limits.max_connections:
            self._make_room(conn)
        if self._sweep is None:
            self._sweep = self.loop.call_later(self.tick, self.sweep)

    def closed(self, conn: HttpToolsProtocol) -> None:
        self.debts.pop(conn, None)
        self.dropped.discard(conn)

    def sweep(self) -> None:
        now = self.loop.time()
        for conn in list(self.connections):
            if conn not in self.dropped:
                self._check(conn, now)
        self._sweep = self.loop.call_later(self.tick, self.sweep) if self.connections else None

    def _check(self, conn: HttpToolsProtocol, now: float) -> None:
        owed = _owed(conn)
        if owed is None or conn.flow.read_paused:  # paused: the server, not the client, is the slow one
            self.debts.pop(conn, None)
            return
        token, phase = owed
        seen, since = self.debts.get(conn, (None, now))
        if token is not seen:
            if not (phase == _HEAD and seen is conn):  # a first head is timed from the connection
                since = now
            self.debts[conn] = (token, since)
            return
        timeout = self.limits.body_timeout if phase == _BODY else self.limits.header_timeout
        if now - since >= timeout:
            self._expire(conn, phase, timeout)

    def _expire(self, conn: HttpToolsProtocol, phase: int, seconds: float) -> None:
        """The client missed its deadline: a 408 if it had started a request that got no answer, then close."""
        if phase == _BODY:
            self.stats.body_timeouts += 1
            cycle = conn.cycle
            if not cycle.response_started:
                cycle.disconnected = True  # the app sees http.disconnect and its reply is discarded
                cycle.message_event.set()
                self.drop(
                    conn, _reply(408, f"The request body did not arrive within {seconds:g} s.", "request_timeout")
                )
            else:
                self.drop(conn, None)
            return
        self.stats.header_timeouts += 1
        if phase == _HEAD:
            self.drop(conn, _reply(408, f"The request head did not arrive within {seconds:g} s.", "request_timeout"))
        else:
            self.drop(conn, None)

    def drop(self, conn: HttpToolsProtocol, reply: bytes | None) -> None:
        if conn in self.dropped or conn.transport.is_closing():
            return
        self.dropped.add(conn)
        self.debts.pop(conn, None)
        if reply is None:
            conn.transport.close()
            return
        _Lingering.take_over(conn, reply, self.loop)

    def _make_room(self, new: HttpToolsProtocol) -> None:
        """Close the oldest connections that have no request in progress (silent or slow ones first, then idle
        keep-alive ones), in a batch so a flood does not pay a scan per accept; refuse `new` if there are none."""
        excess = len(self.connections) - len(self.dropped) - self.limits.max_connections
        batch = max(excess, self.limits.max_connections // 32, 1)
        candidates = [
            c
            for c in self.connections
            if c is not new and c not in self.dropped and (c.cycle is None or c.cycle.response_complete)
        ]
        victims = heapq.nsmallest(batch, candidates, key=self._age)
        for victim in victims:
            self.drop(victim, None)
        self.stats.evicted += len(victims)
        if not victims:
            self.stats.refused += 1
            self.drop(
                new, _reply(503, "The gateway is at its connection limit; retry shortly.", "too_many_connections")
            )

    def _age(self, conn: HttpToolsProtocol) -> tuple[int, float]:
        """Connections that owe bytes go first, oldest first; then idle keep-alive ones, longest idle first."""
        task = conn.timeout_keep_alive_task
        if task is not None:
            return (1, task.when())
        return (0, self.debts.get(conn, (None, 0.0))[1])


class _Lingering(asyncio.Protocol):
    """A connection answered and being closed: the reply and a FIN go out, whatever the client still sends is read
    and thrown away for up to `LINGER` s, then the socket closes (nginx's lingering close).

    Closing a socket at once with the client's bytes unread, or with more on their way, makes the kernel answer with
    a reset, and a reset makes the client's kernel drop the reply it had received but not yet read: a slow client
    would see "connection reset" instead of its 408. uvicorn's protocol still hears `connection_lost`, so its
    bookkeeping and the guard's stay as they are."""

    LINGER = 2.0

    def __init__(self, conn: HttpToolsProtocol, transport: asyncio.Transport) -> None:
        self.conn, self.transport = conn, transport

    @classmethod
    def take_over(cls, conn: HttpToolsProtocol, reply: bytes, loop: asyncio.AbstractEventLoop) -> None:
        transport = conn.transport
        transport.set_protocol(cls(conn, transport))
        transport.write(reply)
        if not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        transport.resume_reading()  # a paused reader would leave bytes unread: the reset this avoids
        loop.call_later(cls.LINGER, transport.close)

    def data_received(self, data: bytes) -> None:
        pass

    def eof_received(self) -> bool:
        return False  # the client is done too: close now

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn.connection_lost(exc)


def _owed(conn: HttpToolsProtocol) -> tuple[object, int] | None:
    """What the client owes now, read from uvicorn's state: (a token naming the phase, the phase), or None."""
    scope, cycle = conn.scope, conn.cycle
    if scope is None:
        return conn, _SILENT
    if cycle is None or cycle.scope is not scope:
        return scope, _HEAD
    if cycle.response_complete:
        if conn.timeout_keep_alive_task is not None or conn.pipeline:
            return None
        return cycle, _TRICKLE
    if cycle.more_body:
        return cycle, _BODY
    return None


def _reply(status: int, message: str, code: str) -> bytes:
    body = orjson.dumps({"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}})
    reason = {408: b"Request Timeout", 503: b"Service Unavailable"}[status]
    head = b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n" % (
        status,
        reason,
        len(body),
    )
    return head + (b"retry-after: 1\r\n" if status == 503 else b"") + b"\r\n" + body


class PorticoConfig(uvicorn.Config):
    """uvicorn's config plus the connection limits; pickled to every worker, where each builds its own guard."""

    def __init__(self, app: Any, *, limits: ServerLimits, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.limits = limits
        self.guard: ConnectionGuard | None = None

    def guard_for(self, server_state: ServerState, loop: asyncio.AbstractEventLoop) -> ConnectionGuard:
        if self.guard is None:
            self.guard = ConnectionGuard(self.limits, loop, server_state.connections)
        return self.guard

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["guard"] = None
        return state


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol under a `ConnectionGuard`. It overrides no parser callback and adds no
    attribute: both would cost on every request. Uvicorn's own keep-alive timer still closes idle connections."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        config = self.config
        if isinstance(config, PorticoConfig):
            config.guard_for(self.server_state, self.loop).opened(self)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        guard = getattr(self.config, "guard", None)
        if guard is not None:
            guard.closed(self)


def build_config(
    app: Any,
    server: ServerConfig,
    *,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
    loop: str = "uvloop",
    log_level: str = "info",
    factory: bool = False,
) -> PorticoConfig:
    """The server `portico serve` runs and the test gateway runs: same protocol, limits and options."""
    return PorticoConfig(
        app,
        limits=limits_from(server),
        factory=factory,
        host=host or server.host,
        port=port or server.port,
        workers=workers or server.workers,
        loop=loop,
        http=GuardedHttpToolsProtocol,
        timeout_keep_alive=server.keepalive_timeout_seconds,
        access_log=False,
        server_header=False,  # no `server: uvicorn` on every response: nothing to fingerprint, less to send
        proxy_headers=False,  # the gateway never reads the client address; the middleware cost ~160 bytecodes/request
        log_level=log_level,
        lifespan="on",
        ws="none",  # no WebSocket routes: spares importing the websockets package in every worker
        timeout_graceful_shutdown=server.shutdown_grace_seconds,
    )


def run(config: PorticoConfig) -> int:
    """What `uvicorn.run` does with a ready config: one process, or a supervisor and `workers` processes.

    0 after a clean stop (SIGTERM, SIGINT); 3 when the server could not start: the port is taken, or a worker
    failed before serving (it printed why), which stops every worker rather than respawning them forever."""
    sock = bind(config.host, config.port)
    if isinstance(sock, str):
        print(sock, file=sys.stderr, flush=True)
        return STARTUP_FAILURE
    server = uvicorn.Server(config)
    try:
        if config.workers > 1:
            supervisor = Supervisor(config, sockets=[sock])
            supervisor.run()
            return STARTUP_FAILURE if supervisor.failed else 0
        # uvicorn re-raises the signal that stopped it once it has drained; with the default disposition that would
        # kill the process (-15) after a clean shutdown. SIGTERM is how orchestrators stop a service: exit 0.
        signal.signal(signal.SIGTERM, lambda _signum, _frame: None)
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # pragma: no cover
        pass
    except SystemExit as exc:  # uvicorn's own exit on a failed start; the app already said why
        return exc.code if isinstance(exc.code, int) and exc.code else STARTUP_FAILURE
    return 0 if server.started else STARTUP_FAILURE


def bind(host: str, port: int) -> socket.socket | str:
    """The listening socket, bound in the parent (workers inherit it), or the one line that says why not."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        hint = (
            "stop the process that holds it, or choose another with --port"
            if exc.errno == errno.EADDRINUSE
            else "check --host and --port"
        )
        return f"portico: cannot start: cannot listen on {host}:{port} ({exc.strerror}); {hint}"
    sock.set_inheritable(True)
    return sock


class Supervisor(Multiprocess):
    """uvicorn's worker supervisor, except that a worker dying before it ever served stops the whole server
    (uvicorn respawns it unless it exited with code 3, forever, while the parent holds the port)."""

    def __init__(self, config: PorticoConfig, sockets: list[socket.socket]) -> None:
        super().__init__(config, sockets=sockets)
        self.failed = False
        self._served: set[int | None] = set()

    def keep_subprocess_alive(self) -> None:
        if self.should_exit.is_set():
            return
        for process in self.processes:
            if process.pid in self._served:
                continue
            if process.process.is_alive():
                if process.is_ready(timeout=0.2):
                    self._served.add(process.pid)
                continue
            process.join()
            log.error("worker %s exited with code %s before it served; stopping", process.pid, process.exitcode)
            self.failed = True
            self.should_exit.set()
            return
        super().keep_subprocess_alive()
        if self.should_exit.is_set():  # uvicorn stopped on a worker's start-up failure code
            self.failed = True
