"""Serving the web API over HTTPS with uvicorn, in the caller's event loop.

Uvicorn is driven through ``Server.startup``/``main_loop``/``shutdown`` rather than
``Server.serve`` because ``serve`` installs SIGINT/SIGTERM handlers while it runs:
signals belong to the process embedding the proxy (``mezctl start``), which stops us
through ``WebServerHandle.stop``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import uvicorn
from starlette.types import ASGIApp

from proto.connlimit import AddressLimiter, Admission, CountedTLS, Gate
from server.proxy.h11_limits import HeadDeadlineH11
from server.tls import reload_cert_chain, restrict_groups

log = logging.getLogger(__name__)

WS_MAX_BYTES = 64 * 1024 + 1024

GRACEFUL_SHUTDOWN_SECONDS = 5
MAX_CONNECTIONS = 1000
HEAD_TIMEOUT = 10.0  # seconds for a TLS handshake, then for each request head
CONNECTIONS_PER_ADDRESS = 128


@dataclass(frozen=True)
class WebLimits:
    """What one client may hold: ``head_timeout`` bounds the TLS handshake and every
    request head; ``per_address`` caps a client address's open connections."""

    head_timeout: float = HEAD_TIMEOUT
    per_address: int = CONNECTIONS_PER_ADDRESS


def _tls_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_file, key_file)
    # Browsers need TLS 1.2 still; nothing older.
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    # Forward-secret AEAD suites only for TLS 1.2 (TLS 1.3 suites are all fine).
    ctx.set_ciphers("ECDHE+AESGCM:ECDHE+CHACHA20")
    restrict_groups(ctx)
    return ctx


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


@dataclass
class WebServerHandle:
    """A running HTTPS server; ``port`` is the port really bound (useful with port 0)."""

    host: str
    port: int
    _server: uvicorn.Server = field(repr=False)
    _task: asyncio.Task[None] = field(repr=False)
    _sock: socket.socket = field(repr=False)
    _tls: ssl.SSLContext = field(repr=False)
    _limiter: AddressLimiter = field(repr=False)

    def load_cert_chain(self, cert_file: Path, key_file: Path) -> None:
        """Serve a new certificate from the next handshake on (every connection's TLS
        uses the one context); see ``server.tls.reload_cert_chain``."""
        reload_cert_chain(self._tls, cert_file, key_file)

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish (up to a few seconds), close."""
        self._server.should_exit = True
        try:
            await self._task
        finally:
            self._limiter.abort_all()  # handshakes still under way: uvicorn never saw them
            self._sock.close()


def _protocol_factory(
    tls: ssl.SSLContext, limits: WebLimits, limiter: AddressLimiter
) -> Callable[..., asyncio.Protocol]:
    """What uvicorn calls per accepted connection (its ``http`` class): the address gate,
    then TLS done here rather than by uvicorn (so that refused connections cost no
    handshake and handshakes are bounded), then h11 with a deadline on each head."""

    def create(**kwargs: Any) -> asyncio.Protocol:
        def make(admission: Admission) -> CountedTLS:
            http = HeadDeadlineH11(head_timeout=limits.head_timeout, **kwargs)
            return CountedTLS(http, tls, admission, handshake_timeout=limits.head_timeout)

        return Gate(limiter, make)

    return create


async def serve_web(
    app: ASGIApp, host: str, port: int, cert_file: Path, key_file: Path,
    limits: WebLimits | None = None,
) -> WebServerHandle:  # fmt: skip
    """Serve ``app`` over HTTPS on host:port (0 picks a free port) until ``stop()``."""
    limits = limits or WebLimits()
    tls = _tls_context(cert_file, key_file)
    limiter = AddressLimiter(limits.per_address, what="proxy web API")
    config = uvicorn.Config(
        app,
        # Pure-Python h11 on purpose: its header and line limits are the ones we document.
        http=cast(Any, _protocol_factory(tls, limits, limiter)),
        # The browser terminal (terminal.py): wsproto, pure Python like h11; frames are
        # capped a little over the terminal's own 64 KiB, and a dead browser is found
        # by pings.
        ws="wsproto",
        ws_max_size=WS_MAX_BYTES,
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        lifespan="off",
        # Clients' X-Forwarded-For would otherwise be trusted from loopback peers.
        proxy_headers=False,
        server_header=False,
        access_log=False,
        log_config=None,
        limit_concurrency=MAX_CONNECTIONS,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    config.load()
    server = uvicorn.Server(config)
    server.lifespan = config.lifespan_class(config)
    sock = _bind(host, port)
    try:
        await server.startup(sockets=[sock])
    except BaseException:
        sock.close()
        raise
    bound_port = int(sock.getsockname()[1])

    async def run() -> None:
        await server.main_loop()
        await server.shutdown(sockets=[sock])

    task = asyncio.create_task(run(), name=f"mezite-web-{bound_port}")
    log.info("proxy web API listening on https://%s:%d", host, bound_port)
    return WebServerHandle(
        host=host, port=bound_port, _server=server, _task=task, _sock=sock, _tls=tls,
        _limiter=limiter,
    )  # fmt: skip
