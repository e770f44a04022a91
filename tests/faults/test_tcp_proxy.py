"""`TcpProxy` does what each mode says, against a local echo server."""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest

from tests.faults.tcp_proxy import TcpProxy


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        with contextlib.suppress(OSError):
            while data := self.request.recv(4096):
                self.request.sendall(data)


@pytest.fixture
def echo_port() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=2)
    sock.settimeout(0.5)
    return sock


def closed(sock: socket.socket) -> bool:
    """The peer closed or reset the connection (rather than merely staying silent)."""
    try:
        return sock.recv(100) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def echoes(sock: socket.socket, data: bytes = b"ping") -> bool:
    sock.sendall(data)
    return sock.recv(100) == data


def test_each_mode_and_back_to_pass(echo_port: int) -> None:
    with TcpProxy("127.0.0.1", echo_port) as proxy:
        with connect(proxy.port) as first:
            assert echoes(first)
            proxy.mode("hang")
            with pytest.raises(TimeoutError):  # bytes vanish, the socket stays up
                echoes(first)
            assert not closed(first)
            with connect(proxy.port) as during, pytest.raises(TimeoutError):
                echoes(during)
        proxy.mode("pass")
        with connect(proxy.port) as second:
            assert echoes(second)
            proxy.mode("drop")
            assert closed(second)
        with connect(proxy.port) as third:
            assert echoes(third)  # drop leaves new connections working
            proxy.mode("refuse")
            assert closed(third)  # the server went down with its connections
            with pytest.raises(ConnectionRefusedError):
                connect(proxy.port)
        proxy.mode("pass")
        with connect(proxy.port) as fourth:
            assert echoes(fourth)
    with pytest.raises(ConnectionRefusedError):
        connect(proxy.port)


def test_an_unknown_mode_is_an_error(echo_port: int) -> None:
    with TcpProxy("127.0.0.1", echo_port) as proxy, pytest.raises(ValueError, match="unknown proxy mode"):
        proxy.mode("slow")  # type: ignore[arg-type]
