"""Run the server roles of one process (``mezctl start``) until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal

from proto.errors import BadParameter
from server.config import ServerConfig

log = logging.getLogger(__name__)


async def serve(config: ServerConfig, stop: asyncio.Event) -> None:
    from server.auth.server import AuthServer, AuthSettings
    from server.backend import SQLiteBackend

    if "proxy" in config.roles:
        raise BadParameter(
            "the proxy role is not available in this version yet",
            hint='start with roles = ["auth"] (the default)',
        )
    if config.backend.type != "sqlite" or config.backend.path is None:
        raise BadParameter("only the sqlite backend is available in this version")
    settings = AuthSettings(
        data_dir=config.data_dir,
        cluster_name=config.cluster_name,
        listen_host=config.auth.listen_addr.host,
        listen_port=config.auth.listen_addr.port,
        tls_names=config.auth.tls_names,
    )
    config.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    async with SQLiteBackend(config.backend.path) as backend:
        await backend.start()
        await AuthServer(settings, backend).serve_forever(stop)


def run(config: ServerConfig) -> None:
    """Serve until a signal asks us to stop, then shut down gracefully."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(config, stop)

    asyncio.run(main())
