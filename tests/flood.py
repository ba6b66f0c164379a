"""Connection floods for the listener tests: many connections from one loopback
address (127.0.0.2 is routable on lo), each stopped half way through its first phase."""

from __future__ import annotations

import contextlib
import resource
import select
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

FLOOD_SOURCE = "127.0.0.2"


def raise_fd_limit(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))


@dataclass
class Flood:
    """The connections the server kept open, and how many it closed at once."""

    held: list[socket.socket] = field(default_factory=list)
    refused: int = 0

    def close(self) -> None:
        for sock in self.held:
            sock.close()

    def wait_all_closed(self, within: float) -> int:
        """How many held connections the server closed within ``within`` seconds."""
        deadline = time.monotonic() + within
        open_ = list(self.held)
        while open_ and time.monotonic() < deadline:
            readable, _, _ = select.select(open_, [], [], 0.5)
            for sock in readable:
                if closed_by_peer(sock):
                    open_.remove(sock)
        return len(self.held) - len(open_)


def closed_by_peer(sock: socket.socket) -> bool:
    try:
        return sock.recv(4096) == b""
    except ssl.SSLWantReadError:
        return False
    except (ConnectionError, ssl.SSLError, OSError):
        return True


def flood(port: int, count: int, start: Callable[[socket.socket], socket.socket | None]) -> Flood:
    """``count`` connections to 127.0.0.1:port from FLOOD_SOURCE, each passed to
    ``start`` (which does the first half of a protocol and returns the socket, or None
    when the server turned it away)."""
    raise_fd_limit(count + 512)
    result = Flood()
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10,
                                        source_address=(FLOOD_SOURCE, 0))  # fmt: skip
        try:
            started = start(sock)
        except (ConnectionError, ssl.SSLError, OSError, TimeoutError):
            started = None
        if started is None:
            result.refused += 1
            sock.close()
        else:
            result.held.append(started)
    return result


def tls_then(
    payload: bytes, *, alpn: list[str] | None = None
) -> Callable[[socket.socket], socket.socket | None]:
    """Finish a TLS handshake (any certificate), send ``payload``, stop."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(alpn)

    def start(sock: socket.socket) -> socket.socket | None:
        tls = ctx.wrap_socket(sock)
        if payload:
            tls.sendall(payload)
        return tls

    return start


def silent(sock: socket.socket) -> socket.socket | None:
    """Connect and send nothing. The server aborts a refused connection at accept, so
    its end is seen at once (a short wait: an SSH server's greeting is no end)."""
    readable, _, _ = select.select([sock], [], [], 0.1)
    return None if readable and closed_by_peer(sock) else sock


@contextlib.contextmanager
def flooded(
    port: int, count: int, start: Callable[[socket.socket], socket.socket | None]
) -> Iterator[Flood]:
    result = flood(port, count, start)
    try:
        yield result
    finally:
        result.close()
