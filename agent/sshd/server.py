"""The node's SSH server (``mezd start``): certificate-only, sessions as the login user.

asyncssh's ``listen()`` builds its own connection objects; the node needs its own
connection class (see connection.py), so the listener is created here with the same
two steps ``listen()`` takes: options, then a listener (``proto.sshserver.listen_counted``:
the per-address gate, and proto/listener.py rather than ``loop.create_server``, whose
accept loop floods the log when out of descriptors). New connections read the current
options, which is how renewed host credentials apply without a restart."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import asyncssh

from agent.sshd.config import AuditSink, NodeSSHConfig
from agent.sshd.connection import TERMINATE_GRACE, NodeServerConnection
from agent.sshd.context import NodeContext
from agent.sshd.handler import NodeSSHHandler
from agent.sshd.policy import TrustedUserCAs
from agent.sshd.process import unignore_session_signals
from agent.sshd.sftp import resolve_sftp
from agent.sshd.users import SystemUserLookup, UserLookup
from proto.clock import Clock, SystemClock
from proto.connlimit import Admission
from proto.listener import Listener
from proto.lockwatch import LockView, recheck_forever
from proto.sshserver import certificate_only_options, listen_counted

if TYPE_CHECKING:
    from agent.recording import Spool

logger = logging.getLogger(__name__)

SERVER_VERSION = "Mezite"
SETSID_PATH = "/usr/bin:/bin:/usr/sbin:/sbin"
CLOSE_GRACE_SECONDS = 5.0
SHUTDOWN_REASON = "node is shutting down"


def server_options(
    node: NodeContext, host_key: asyncssh.SSHKey, host_cert: asyncssh.SSHCertificate
) -> asyncssh.SSHServerConnectionOptions:
    """The shared listener policy (proto.sshserver), with the node's session settings."""
    return certificate_only_options(
        owner="node",
        server_factory=lambda: NodeSSHHandler(node),
        host_key=host_key,
        host_cert=host_cert,
        server_version=SERVER_VERSION,
        allow_pty=True,
        agent_forwarding=True,  # and then only with permit-agent-forwarding
        # Sessions are byte streams between the client and the login's own programs.
        line_editor=False,
        encoding=None,
        login_timeout=node.config.login_timeout,
    )


class NodeSSHServer:
    """A listening node SSH server."""

    def __init__(self, node: NodeContext) -> None:
        self._node = node
        config = node.config
        self._options = server_options(node, config.host_key, config.host_cert)
        self._server: Listener | None = None
        self._recheck: asyncio.Task[None] | None = None
        node.locks.on_change(self.enforce_locks)

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        config = self._node.config

        def new_connection(admission: Admission) -> NodeServerConnection:
            return NodeServerConnection(loop, self._options, self._node, admission)

        self._server = await listen_counted(
            new_connection, config.listen_host, config.listen_port, what="node SSH server",
            unauthenticated_per_address=config.unauthenticated_per_address,
        )  # fmt: skip
        self._recheck = asyncio.create_task(recheck_forever(self.enforce_locks))
        logger.info("node SSH server listening on %s:%d", config.listen_host, self.port)

    def enforce_locks(self) -> None:
        """End the connections whose user a lock now refuses (or all of them, if this
        node is locked, removed, or strict and out of touch)."""
        for conn in list(self._node.connections):
            login = conn.authorized
            if login is None or conn.terminated:
                continue
            reason = login.lock_refusal(self._node)
            if reason is not None:
                conn.terminate(reason)

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.port

    def set_host_credentials(self, key: asyncssh.SSHKey, cert: asyncssh.SSHCertificate) -> None:
        """A renewed host key and certificate, used from the next connection on."""
        self._options = server_options(self._node, key, cert)
        logger.info("node SSH server host certificate replaced")

    def set_user_ca_keys(self, lines: Sequence[str]) -> None:
        """The user CA keys to trust, from the next authentication attempt on."""
        self._node.trusted.replace(lines)
        logger.info("node SSH server trusts %d user CA key(s)", len(lines))

    async def shut_down(self, reason: str = SHUTDOWN_REASON) -> None:
        """Stop listening, tell every open session why it ends (a last line on its
        stderr, exit status 255), give those lines a moment to reach the clients, then
        close everything and wait for the session processes."""
        if self._server is not None:
            self._server.close()
        told = 0
        for conn in list(self._node.connections):
            for session in list(conn.sessions):
                session.end(reason)
                told += 1
        if told:
            logger.info("told %d open session(s): %s", told, reason)
            await asyncio.sleep(TERMINATE_GRACE)
        self.close()
        await self.wait_closed()

    def close(self) -> None:
        """Stop listening, close every connection and hang up every session."""
        if self._recheck is not None:
            self._recheck.cancel()
        if self._server is not None:
            self._server.close()
        for conn in list(self._node.connections):
            conn.close()
        for child in list(self._node.children):
            child.hangup()

    async def wait_closed(self) -> None:
        if self._server is not None:
            await self._server.wait_closed()
        for conn in list(self._node.connections):
            await conn.wait_closed()
        children = list(self._node.children)
        if not children:
            return
        waits = [asyncio.ensure_future(child.wait()) for child in children]
        _, pending = await asyncio.wait(waits, timeout=CLOSE_GRACE_SECONDS)
        if pending:
            logger.warning("killing %d session process(es) that ignored SIGHUP", len(pending))
            for child in children:
                child.kill()
            await asyncio.wait(pending)


async def start_node_ssh_server(
    config: NodeSSHConfig,
    audit: AuditSink,
    *,
    clock: Clock | None = None,
    users: UserLookup | None = None,
    locks: LockView | None = None,
    spool: Spool | None = None,
    recording_done: Callable[[str], None] | None = None,
) -> NodeSSHServer:
    unignored = unignore_session_signals()
    if unignored:
        logger.info("sessions get %s back (this process was started ignoring them)",
                    ", ".join(unignored))  # fmt: skip
    sftp = resolve_sftp(config.sftp_server, config.sftp_search)
    if sftp.refused:
        logger.warning("SFTP is turned off (--sftp-server none): only scp -O can copy files")
    else:
        logger.info("SFTP served by %s", sftp.describe())
    setsid = shutil.which("setsid", path=SETSID_PATH)
    if setsid is None:
        logger.warning("util-linux setsid not found: PTY sessions will be refused")
    clock = clock or SystemClock()
    node = NodeContext(
        config=config,
        trusted=TrustedUserCAs(config.user_ca_keys),
        audit=audit,
        clock=clock,
        locks=locks or LockView(clock, config.host_id),
        users=users or SystemUserLookup(),
        daemon_uid=os.geteuid(),
        sftp=sftp,
        setsid=setsid,
        spool=spool,
        recording_done=recording_done,
    )
    server = NodeSSHServer(node)
    try:
        await server._listen()
    except BaseException:
        with contextlib.suppress(Exception):
            server.close()
        raise
    return server
