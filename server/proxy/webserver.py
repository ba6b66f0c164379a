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

import uvicorn
from starlette.types import ASGIApp

from server.tls import reload_cert_chain, restrict_groups

log = logging.getLogger(__name__)

GRACEFUL_SHUTDOWN_SECONDS = 5
MAX_CONNECTIONS = 1000


def _tls_context(config: uvicorn.Config, default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    ctx = default()
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

    def load_cert_chain(self, cert_file: Path, key_file: Path) -> None:
        """Serve a new certificate from the next handshake on (uvicorn hands its one
        SSLContext to the listener); see ``server.tls.reload_cert_chain``."""
        context = self._server.config.ssl
        assert context is not None
        reload_cert_chain(context, cert_file, key_file)

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish (up to a few seconds), close."""
        self._server.should_exit = True
        try:
            await self._task
        finally:
            self._sock.close()


async def serve_web(
    app: ASGIApp, host: str, port: int, cert_file: Path, key_file: Path
) -> WebServerHandle:
    """Serve ``app`` over HTTPS on host:port (0 picks a free port) until ``stop()``."""
    config = uvicorn.Config(
        app,
        ssl_certfile=cert_file,
        ssl_keyfile=key_file,
        ssl_context_factory=_tls_context,
        # Pure-Python h11 on purpose: its header and line limits are the ones we document.
        http="h11",
        ws="none",
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
    return WebServerHandle(host=host, port=bound_port, _server=server, _task=task, _sock=sock)
