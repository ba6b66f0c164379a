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

from agent.addresses import claimed_addrs, claimed_hosts
from agent.identity import NodeIdentity
from agent.presence import Heartbeat
from agent.recording import DEFAULT_MAX_BYTES, RECORDINGS_DIR, Spool
from agent.recording_upload import RecordingUploader
from proto.addr import HostPort, listen_errors
from proto.audit_forwarder import AuditForwarder
from proto.client import AsyncAuthClient
from proto.clock import Clock, SystemClock
from proto.host_claims import canonical_host
from proto.keys import new_node_keys
from proto.lifecycle import Renewer
from proto.lockwatch import LockView, watch_locks

if TYPE_CHECKING:
    from agent.sshd.server import NodeSSHServer
    from agent.workload_api import WorkloadServer

log = logging.getLogger(__name__)

LOCKS_FILE = "locks.json"
ADDRESS_CHECK = 60.0  # seconds between looks at the machine's addresses
RECORDING_CLOSE_GRACE = 10.0  # seconds shutdown waits for recordings to reach the disk


@dataclass(frozen=True)
class NodeSettings:
    data_dir: Path
    listen_host: str = "0.0.0.0"  # noqa: S104 - an SSH server listens on every interface
    listen_port: int = 3022
    heartbeat_interval: float = 30.0
    sftp_server: str = "auto"  # see agent.sshd.sftp.resolve_sftp
    recording_max_bytes: int = DEFAULT_MAX_BYTES  # per session (see agent.recording)
    workload_api: str | None = None  # unix:///PATH: serve the SPIFFE Workload API there


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
        self.workload_api: WorkloadServer | None = None
        self.port = 0
        self._hosts: list[str] = []  # what it claims when given no --advertise-addr
        self.spool = Spool(settings.data_dir / RECORDINGS_DIR, settings.recording_max_bytes)
        self.uploads = RecordingUploader(
            self.client,
            self.spool.directory,
            node_id=self.identity.agent_id,
            node_name=self.identity.name,
        )

    def client(self) -> AsyncAuthClient:
        if self._client is None:
            ident = self.identity
            self._client = AsyncAuthClient(
                ident.auth_server, ident.tls_ca_pem.encode(), ident.client_identity()
            )
        return self._client

    def claimed(self) -> list[str]:
        """The HOST:PORTs this node claims (``--advertise-addr``, else found here:
        agent/addresses.py); their hosts are what its host certificate names."""
        if self.identity.advertise_addrs:
            return list(self.identity.advertise_addrs)
        return claimed_addrs(self._hosts or ["127.0.0.1"], self.port)

    def advertised(self) -> str:
        """The address it heartbeats (what `mez ssh` without a proxy dials)."""
        return self.claimed()[0]

    def look_at_addresses(self) -> bool:
        """Find the hosts to claim again; True when the host certificate does not name
        exactly those (then it is renewed at once)."""
        ident = self.identity
        if not ident.advertise_addrs:
            self._hosts = claimed_hosts(
                self.settings.listen_host, cluster=ident.cluster_name, name=ident.name
            )
        return not ident.certifies_exactly(
            canonical_host(HostPort.parse(a).host) for a in self.claimed()
        )

    def _renew_if_moved(self, renewer: Renewer[NodeIdentity]) -> None:
        if self.look_at_addresses():
            log.info("this node's addresses are now %s; renewing its host certificate",
                     ", ".join(self.claimed()))  # fmt: skip
            renewer.renew_soon()

    async def _watch_addresses(self, renewer: Renewer[NodeIdentity]) -> None:
        while True:
            await asyncio.sleep(ADDRESS_CHECK)
            self._renew_if_moved(renewer)

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
            server = await start_node_ssh_server(
                config,
                self.audit,
                locks=self.locks,
                spool=self.spool,
                recording_done=self.uploads.add,
            )
        self.ssh = server
        self.port = server.port
        log.info("node %s serving SSH on %s:%d", ident.name, self.settings.listen_host, self.port)

    async def _start_workload_api(self, address: str) -> None:
        from agent.workload_api import WorkloadServer
        from agent.workload_svids import SVIDCache, auth_issuer

        server = WorkloadServer(address, SVIDCache(auth_issuer(self.client), self.clock))
        await server.start()
        self.workload_api = server

    async def _renew(self, current: NodeIdentity) -> NodeIdentity:
        """RenewHostCerts for fresh keys, kept on disk before anything uses them."""
        from proto.v1 import auth_pb2 as pb

        keys = new_node_keys()
        reply = await self.client().rpc.RenewHostCerts(
            pb.RenewHostCertsRequest(
                ssh_public_key=keys.ssh_public_line,
                tls_public_key_pem=keys.tls_public_pem,
                advertise_addrs=self.claimed(),
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

    async def _renew_until_refused(self, renewer: Renewer[NodeIdentity]) -> None:
        # When auth refuses the node (removed or locked) the Renewer says so and ends;
        # the node keeps serving until its certificate lapses, still enforcing locks,
        # so sessions it refuses stay refused. See docs/rfd/0007.
        await renewer.run()

    async def serve(self, stop: asyncio.Event) -> None:
        self.spool.prepare()
        self.uploads.add_left_over()  # before any session can add a new one
        await self._start_ssh()
        if self.settings.workload_api:
            await self._start_workload_api(self.settings.workload_api)
        renewer = self.renewer()
        self._renew_if_moved(renewer)  # before the first beat, which names an address
        heartbeat = Heartbeat(
            self.client, self.identity.name, self.advertised, self.settings.heartbeat_interval
        )
        tasks = [
            asyncio.create_task(heartbeat.run(), name="heartbeat"),
            asyncio.create_task(watch_locks(self.client, self.locks), name="locks"),
            asyncio.create_task(self.audit.run(), name="audit"),
            asyncio.create_task(self._renew_until_refused(renewer), name="renew"),
            asyncio.create_task(self._watch_addresses(renewer), name="addresses"),
            asyncio.create_task(self.uploads.run(), name="recordings"),
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
            if self.workload_api is not None:
                await self.workload_api.close()
            if self.ssh is not None:
                await self.ssh.shut_down()
            # Recordings of the sessions just ended reach the disk (and are uploaded at
            # the next start).
            if not await asyncio.to_thread(self.spool.wait_idle, RECORDING_CLOSE_GRACE):
                log.warning("some session recordings were still being written at shutdown")
            await asyncio.to_thread(self.spool.shut_down)
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
