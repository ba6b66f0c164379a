"""Run the server roles of one process (``mezctl start``) until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from proto.addr import HostPort, listen_errors
from proto.errors import BadParameter, ConnectionProblem
from proto.files import ensure_private_dir, refuse_read_only
from server.config import ServerConfig
from server.heap import HeapFreezer

if TYPE_CHECKING:
    from server.audit.log import AuditLog
    from server.auth.server import AuthServer
    from server.backend import Backend
    from server.proxy.service import ProxyService

log = logging.getLogger(__name__)

AUDIT_FILE = "audit.sqlite"


async def serve(config: ServerConfig, stop: asyncio.Event) -> None:
    from server.auth.server import AuthServer

    if "auth" not in config.roles:
        await _serve_lone_proxy(config, stop)
        return
    _make_data_dir(config.data_dir)
    async with (
        _backend(config) as backend,
        _audit_log(config) as audit_log,
    ):
        await backend.start()
        await audit_log.start()
        auth = AuthServer(config, backend, audit_log)
        proxy = None
        try:
            with listen_errors(config.auth.listen_addr):
                await auth.start()
            if "proxy" in config.roles:
                proxy = await _start_proxy(config, auth)  # names its own listeners
            await stop.wait()
        finally:
            log.info("shutting down")
            if proxy is not None:
                await proxy.stop()
            await auth.stop()


def _make_data_dir(path: Path) -> None:
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except FileExistsError:
        raise BadParameter(
            f"data dir {path} is not a directory", hint="pass --data-dir with a directory"
        ) from None
    except OSError as exc:
        raise ConnectionProblem(
            f"cannot create the data dir {path}: {exc.strerror or exc}",
            hint="choose a data dir this user can write (--data-dir)",
        ) from None
    refuse_read_only(path)


def _backend(config: ServerConfig) -> Backend:
    """The configured store, not yet open (``async with`` opens it)."""
    if config.backend.type == "postgres":
        from server.backend.postgres import PostgresBackend

        assert config.backend.dsn is not None  # resolve_config requires it
        return PostgresBackend(config.backend.dsn)
    from server.backend import SQLiteBackend

    assert config.backend.path is not None
    return SQLiteBackend(config.backend.path)


def _audit_log(config: ServerConfig) -> AuditLog:
    """Beside the store: in PostgreSQL every auth server writes to (and searches) one
    log; with SQLite, a file of its own in the data dir."""
    if config.backend.type == "postgres":
        from server.audit.postgres import PostgresAuditLog

        assert config.backend.dsn is not None
        return PostgresAuditLog(config.backend.dsn)
    from server.audit import SQLiteAuditLog

    return SQLiteAuditLog(config.data_dir / AUDIT_FILE)


async def _serve_lone_proxy(config: ServerConfig, stop: asyncio.Event) -> None:
    """The proxy alone: joined to (or rejoining) a remote auth service."""
    from server.proxy import lone

    ensure_private_dir(config.data_dir)
    proxy, identity = await lone.start(config)  # names its own listeners' errors
    renewal = asyncio.create_task(lone.renew_until_refused(proxy, config, identity), name="renew")
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        renewal.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewal
        await proxy.stop()


async def _start_proxy(config: ServerConfig, auth: AuthServer) -> ProxyService:
    from server.proxy.service import ProxyService
    from server.proxy_files import ProxyCredentials

    assert auth.cas is not None
    names = tuple(config.auth.tls_names) + (
        (HostPort.parse(config.proxy.public_addr).host,) if config.proxy.public_addr else ()
    )
    directory = await auth.local_proxy_credentials(names)
    assert auth.local_proxy is not None
    creds = ProxyCredentials(directory=directory, agent_id=auth.local_proxy.agent_id)
    proxy = ProxyService(config, auth.addr, creds, auth.cas.cluster_name, auth.cas.host_x509.pin)
    await proxy.start()

    async def reload() -> None:
        await proxy.reload(creds)  # the same files, renewed in place

    auth.on_local_proxy_renewed = reload
    return proxy


def run(config: ServerConfig) -> None:
    """Serve until a signal asks us to stop, then shut down gracefully."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        heap = HeapFreezer()
        heap.install()
        reclaim = asyncio.create_task(heap.reclaim_periodically(), name="heap-reclaim")
        try:
            await serve(config, stop)
        finally:
            reclaim.cancel()
            heap.uninstall()

    asyncio.run(main())
