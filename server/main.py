"""Run the server roles of one process (``mezctl start``) until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal

from proto.errors import BadParameter
from server.config import ServerConfig

log = logging.getLogger(__name__)

AUDIT_FILE = "audit.sqlite"


async def serve(config: ServerConfig, stop: asyncio.Event) -> None:
    from server.audit import SQLiteAuditLog
    from server.auth.server import AuthServer
    from server.backend import SQLiteBackend

    if "proxy" in config.roles:
        raise BadParameter(
            "the proxy role is not available in this version yet",
            hint='start with roles = ["auth"] (the default)',
        )
    if config.backend.type != "sqlite" or config.backend.path is None:
        raise BadParameter("only the sqlite backend is available in this version")
    config.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    async with (
        SQLiteBackend(config.backend.path) as backend,
        SQLiteAuditLog(config.data_dir / AUDIT_FILE) as audit_log,
    ):
        await backend.start()
        await audit_log.start()
        await AuthServer(config, backend, audit_log).serve_forever(stop)


def run(config: ServerConfig) -> None:
    """Serve until a signal asks us to stop, then shut down gracefully."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(config, stop)

    asyncio.run(main())
