"""`mezd start`: the node's SSH server, its heartbeat, its lock stream, its audit
forwarder and the renewal of its certificates, all on one event loop until SIGINT or
SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from agent.identity import NodeIdentity
from agent.presence import Heartbeat
from proto.addr import listen_errors
from proto.audit_forwarder import AuditForwarder
from proto.client import AsyncAuthClient
from proto.clock import Clock, SystemClock
from proto.keys import new_node_keys
from proto.lifecycle import Renewer
from proto.lockwatch import LockView, watch_locks

if TYPE_CHECKING:
    from agent.sshd.server import NodeSSHServer

log = logging.getLogger(__name__)

LOCKS_FILE = "locks.json"


@dataclass(frozen=True)
class NodeSettings:
    data_dir: Path
    listen_host: str = "0.0.0.0"  # noqa: S104 - an SSH server listens on every interface
    listen_port: int = 3022
    heartbeat_interval: float = 30.0
    sftp_server: str = "auto"  # see agent.sshd.sftp.resolve_sftp


class Node:
    def __init__(self, settings: NodeSettings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.identity = NodeIdentity.load(settings.data_dir)
        self._client: AsyncAuthClient | None = None
        self.audit = AuditForwarder(self.client)
        # What it knew of the locks when it last heard from auth survives a restart.
        self.locks = LockView(self.clock, self.identity.agent_id, settings.data_dir / LOCKS_FILE)
        self.ssh: NodeSSHServer | None = None
        self.port = 0

    def client(self) -> AsyncAuthClient:
        if self._client is None:
            ident = self.identity
            self._client = AsyncAuthClient(
                ident.auth_server, ident.tls_ca_pem.encode(), ident.client_identity()
            )
        return self._client

    def advertised(self) -> str:
        if self.identity.advertise_addrs:
            return self.identity.advertise_addrs[0]
        host = self.settings.listen_host
        host = "127.0.0.1" if host in ("0.0.0.0", "") else host  # noqa: S104
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"

    async def _start_ssh(self) -> None:
        import asyncssh

        from agent.sshd import NodeSSHConfig, start_node_ssh_server

        ident = self.identity
        config = NodeSSHConfig(
            host_id=ident.agent_id,
            node_name=ident.name,
            labels=ident.labels,
            host_key=asyncssh.import_private_key(ident.ssh_host_key_pem),
            host_cert=asyncssh.import_certificate(ident.ssh_host_cert),
            user_ca_keys=ident.user_ca_keys,
            listen_host=self.settings.listen_host,
            listen_port=self.settings.listen_port,
            sftp_server=self.settings.sftp_server,
        )
        listen = f"{self.settings.listen_host}:{self.settings.listen_port}"
        with listen_errors(listen):
            server = await start_node_ssh_server(config, self.audit, locks=self.locks)
        self.ssh = server
        self.port = server.port
        log.info("node %s serving SSH on %s:%d", ident.name, self.settings.listen_host, self.port)

    async def _renew(self, current: NodeIdentity) -> NodeIdentity:
        """RenewHostCerts for fresh keys, kept on disk before anything uses them."""
        from proto.v1 import auth_pb2 as pb

        keys = new_node_keys()
        reply = await self.client().rpc.RenewHostCerts(
            pb.RenewHostCertsRequest(
                ssh_public_key=keys.ssh_public_line, tls_public_key_pem=keys.tls_public_pem
            ),
        )
        fresh = current.renewed(keys, reply.credentials)
        fresh.save(self.settings.data_dir)
        return fresh

    async def _adopt(self, fresh: NodeIdentity) -> None:
        """New SSH connections get the new host certificate; the next call to auth dials
        with the new client certificate."""
        import asyncssh

        self.identity = fresh
        if self.ssh is not None:
            self.ssh.set_host_credentials(
                asyncssh.import_private_key(fresh.ssh_host_key_pem),
                asyncssh.import_certificate(fresh.ssh_host_cert),
            )
        old, self._client = self._client, None
        if old is not None:
            await old.close()

    def renewer(self) -> Renewer[NodeIdentity]:
        ident = self.identity
        return Renewer(
            f"node {ident.name} ({ident.agent_id})",
            ident,
            renew=self._renew,
            adopt=self._adopt,
            clock=self.clock,
        )

    async def _renew_until_refused(self) -> None:
        # When auth refuses the node (removed or locked) the Renewer says so and ends;
        # the node keeps serving until its certificate lapses, still enforcing locks,
        # so sessions it refuses stay refused. See docs/rfd/0007.
        await self.renewer().run()

    async def serve(self, stop: asyncio.Event) -> None:
        await self._start_ssh()
        heartbeat = Heartbeat(
            self.client, self.identity.name, self.advertised, self.settings.heartbeat_interval
        )
        tasks = [
            asyncio.create_task(heartbeat.run(), name="heartbeat"),
            asyncio.create_task(watch_locks(self.client, self.locks), name="locks"),
            asyncio.create_task(self.audit.run(), name="audit"),
            asyncio.create_task(self._renew_until_refused(), name="renew"),
        ]
        try:
            await stop.wait()
        finally:
            log.info("shutting down")
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if self.ssh is not None:
                self.ssh.close()
                await self.ssh.wait_closed()
            await self.audit.flush()
            if self._client is not None:
                await self._client.close()


def run(settings: NodeSettings) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await Node(settings).serve(stop)

    asyncio.run(main())
