"""Real servers for tests, on 127.0.0.1 port 0, each in a thread with its own event loop
so that tests can use the synchronous grpcio clients the CLIs use."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from proto.client import AuthClient, ClientIdentity
from proto.clock import Clock
from proto.trust import certificate_agent_id
from server.audit import SQLiteAuditLog
from server.auth.server import ADMIN_DIR, AuthServer
from server.backend import SQLiteBackend
from server.config import ServerConfig, resolve_config

T = TypeVar("T")


class LoopThread:
    """An event loop running in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Awaitable[T], timeout: float = 30) -> T:
        fut: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]
        return fut.result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


@dataclass
class RunningAuth:
    server: AuthServer
    data_dir: Path
    loop: LoopThread

    @property
    def addr(self) -> str:
        return self.server.addr

    @property
    def ca_pem(self) -> bytes:
        return (self.data_dir / ADMIN_DIR / "ca.pem").read_bytes()

    def admin_identity(self) -> ClientIdentity:
        admin = self.data_dir / ADMIN_DIR
        cert = (admin / "cert.pem").read_bytes()
        return ClientIdentity(
            agent_id=certificate_agent_id(cert),
            cert_pem=cert,
            key_pem=(admin / "key.pem").read_bytes(),
        )

    def client(self, identity: ClientIdentity | None = None) -> AuthClient:
        return AuthClient(self.addr, self.ca_pem, identity or ClientIdentity())

    def admin(self) -> AuthClient:
        return self.client(self.admin_identity())

    def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run a coroutine on the server's loop (to inspect or seed its state)."""
        return self.loop.run(fn())

    def backend_call(self, fn: Callable[[Any], Awaitable[T]]) -> T:
        return self.loop.run(fn(self.server.backend))


def test_config(data_dir: Path, **flags: object) -> ServerConfig:
    """A config as `mezctl start` would resolve it, on 127.0.0.1 port 0."""
    base: dict[str, object] = {
        "data_dir": data_dir,
        "cluster_name": "test-cluster",
        "auth.listen_addr": "127.0.0.1:0",
        "auth.tls_names": "localhost,127.0.0.1",
        # Tests log in far more often than people; the limiter has its own test.
        "auth.rate_limit_per_minute": 100_000,
    }
    return resolve_config(config_file=None, env={}, flags={**base, **flags})


@contextmanager
def running_auth(
    data_dir: Path, *, clock: Clock | None = None, **flags: object
) -> Iterator[RunningAuth]:
    loop = LoopThread()
    config = test_config(data_dir, **flags)
    backend = SQLiteBackend(data_dir / "backend.sqlite", clock=clock)
    audit_log = SQLiteAuditLog(data_dir / "audit.sqlite")
    server = AuthServer(config, backend, audit_log, clock=clock)

    async def start() -> None:
        await backend.open()
        await audit_log.start()
        await server.start()

    async def stop() -> None:
        await server.stop()
        await audit_log.close()
        await backend.close()

    loop.run(start())
    try:
        yield RunningAuth(server=server, data_dir=data_dir, loop=loop)
    finally:
        loop.run(stop())
        loop.close()
