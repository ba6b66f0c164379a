"""A TCP listener that survives running out of descriptors.

asyncio's own accept loop (``loop.create_server``) handles EMFILE/ENFILE by logging a
traceback and scheduling a retry, but keeps calling ``accept()`` for the rest of its
backlog: under a connection flood at the descriptor limit that is thousands of
tracebacks a second and as many retry timers. This listener binds the sockets itself
and accepts with ``loop.sock_accept``: when the process is out of descriptors it stops
accepting for a short, growing pause (the kernel's backlog holds the waiting clients),
says so in one log line per interval with a count, and hands every accepted socket to
the protocol factory with ``loop.connect_accepted_socket``, as ``create_server`` would.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from collections.abc import Callable

log = logging.getLogger(__name__)

GONE_BEFORE_ACCEPT = frozenset({errno.ECONNABORTED, errno.ECONNRESET, errno.EPROTO})
BACKLOG = 100
PAUSE_FIRST = 0.05
PAUSE_MAX = 1.0
REPORT_EVERY = 10.0  # seconds between log lines while accepts keep failing


class AcceptFailures:
    """Counts failed accepts and logs the first at once, then one line per interval."""

    def __init__(self, what: str, clock: Callable[[], float], every: float = REPORT_EVERY):
        self._what = what
        self._clock = clock
        self._every = every
        self._unreported = 0
        self._reported_at: float | None = None
        self._told = False  # the last line said accepts are failing
        self.total = 0

    def failed(self, exc: OSError) -> None:
        self.total += 1
        self._unreported += 1
        now = self._clock()
        if self._reported_at is None or now - self._reported_at >= self._every:
            log.warning(
                "%s: %d connection(s) not accepted: %s; pausing accepts until "
                "descriptors are free (raise the limit with `ulimit -n`)",
                self._what,
                self._unreported,
                exc.strerror or exc,
            )
            self._reported_at = now
            self._unreported = 0
            self._told = True

    def recovered(self) -> None:
        # At most one recovery line per failure line: flapping stays two lines an interval.
        if self._told:
            log.info("%s: accepting connections again (%d refused in all)",
                     self._what, self.total)  # fmt: skip
            self._told = False


def bind_tcp(host: str, port: int, backlog: int = BACKLOG) -> list[socket.socket]:
    """Listening sockets for every address ``host`` resolves to (as create_server
    binds them: SO_REUSEADDR, IPv6 sockets IPv6-only). OSError as bind raised it."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, addr in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(addr)
            sock.listen(backlog)
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class Listener:
    """Serving ``factory`` on bound sockets until closed."""

    def __init__(
        self, what: str, sockets: list[socket.socket], factory: Callable[[], asyncio.Protocol]
    ) -> None:
        loop = asyncio.get_running_loop()
        self.sockets = sockets
        self._factory = factory
        self.failures = AcceptFailures(what, loop.time)
        self._handshakes: set[asyncio.Task[None]] = set()
        self._accepting = [
            asyncio.create_task(self._accept_forever(sock), name=f"accept {what}")
            for sock in sockets
        ]

    @property
    def port(self) -> int:
        return int(self.sockets[0].getsockname()[1])

    async def _accept_forever(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        try:
            await self._accept_until_cancelled(loop, sock)
        finally:
            # Here, not in close(): the loop has stopped watching the descriptor by now,
            # so a new socket that reuses the number cannot be unwatched by mistake.
            sock.close()

    async def _accept_until_cancelled(
        self, loop: asyncio.AbstractEventLoop, sock: socket.socket
    ) -> None:
        pause = PAUSE_FIRST
        while True:
            try:
                conn, _ = await loop.sock_accept(sock)
            except OSError as exc:
                if exc.errno in GONE_BEFORE_ACCEPT:
                    continue
                # Out of descriptors (or anything unexpected): never a busy loop.
                self.failures.failed(exc)
                await asyncio.sleep(pause)
                pause = min(pause * 2, PAUSE_MAX)
                continue
            pause = PAUSE_FIRST
            self.failures.recovered()
            task = asyncio.create_task(self._connect(conn))
            self._handshakes.add(task)
            task.add_done_callback(self._handshakes.discard)

    async def _connect(self, conn: socket.socket) -> None:
        try:
            await asyncio.get_running_loop().connect_accepted_socket(self._factory, conn)
        except OSError as exc:
            # The peer went away between accept and the transport (or no descriptor
            # was left for the protocol's own needs): this connection only.
            log.debug("dropped an accepted connection: %s", exc)
            conn.close()
        except Exception:
            log.exception("dropped an accepted connection")
            conn.close()

    def close(self) -> None:
        """Stop accepting; the listening sockets close as their accept tasks end
        (accepted connections stay the protocol's to close)."""
        for task in self._accepting:
            task.cancel()

    async def wait_closed(self) -> None:
        for task in [*self._accepting, *self._handshakes]:
            with contextlib.suppress(asyncio.CancelledError):
                await task
