"""The node's SSH server (``mezd start``): certificate-only, sessions as the login user.

asyncssh's ``listen()`` builds its own connection objects; the node needs its own
connection class (see connection.py), so the listener is created here with the same
two steps ``listen()`` takes: options, then ``loop.create_server``. New connections
read the current options, which is how renewed host credentials apply without a
restart."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
from collections.abc import Sequence

import asyncssh
from asyncssh.encryption import get_encryption_algs
from asyncssh.kex import get_kex_algs
from asyncssh.mac import get_mac_algs
from cryptography.hazmat.primitives.serialization import (
    SSHCertificate,
    SSHCertificateType,
    load_ssh_public_identity,
)

from agent.sshd.config import AuditSink, NodeSSHConfig
from agent.sshd.connection import NodeServerConnection
from agent.sshd.context import NodeContext
from agent.sshd.handler import NodeSSHHandler
from agent.sshd.policy import TrustedUserCAs
from agent.sshd.sftp import resolve_sftp
from agent.sshd.users import SystemUserLookup, UserLookup
from proto.clock import Clock, SystemClock
from proto.errors import BadParameter
from proto.lockwatch import LockView, recheck_forever

logger = logging.getLogger(__name__)

# Modern algorithms only, in OpenSSH's order of preference; whatever this asyncssh
# build lacks (post-quantum KEX, UMAC) is left out rather than failing.
KEX_ALGS = (
    "mlkem768x25519-sha256",
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
    "ecdh-sha2-nistp256",
    "ecdh-sha2-nistp384",
    "ecdh-sha2-nistp521",
    "diffie-hellman-group16-sha512",
    "diffie-hellman-group18-sha512",
    "diffie-hellman-group14-sha256",
)
ENCRYPTION_ALGS = (
    "chacha20-poly1305@openssh.com",
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-ctr",
    "aes192-ctr",
    "aes256-ctr",
)
MAC_ALGS = (
    "umac-128-etm@openssh.com",
    "hmac-sha2-256-etm@openssh.com",
    "hmac-sha2-512-etm@openssh.com",
)
# What user keys may sign with (advertised in server-sig-algs): no SHA-1 ``ssh-rsa``.
SIGNATURE_ALGS = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "rsa-sha2-512",
    "rsa-sha2-256",
)
LOGIN_TIMEOUT_SECONDS = 60
SERVER_VERSION = "Mezite"
SETSID_PATH = "/usr/bin:/bin:/usr/sbin:/sbin"
CLOSE_GRACE_SECONDS = 5.0


def _available(wanted: tuple[str, ...], supported: list[bytes]) -> list[str]:
    return [alg for alg in wanted if alg.encode() in supported]


def _check_host_cert(cert: asyncssh.SSHCertificate) -> None:
    line = cert.export_certificate("openssh")
    try:
        parsed = load_ssh_public_identity(line.split(b"\n")[0].strip())
    except ValueError as exc:
        raise BadParameter("the node's host certificate is not an OpenSSH certificate") from exc
    if not isinstance(parsed, SSHCertificate) or parsed.type is not SSHCertificateType.HOST:
        raise BadParameter("the node's host certificate must be a host certificate")


def server_options(
    node: NodeContext, host_key: asyncssh.SSHKey, host_cert: asyncssh.SSHCertificate
) -> asyncssh.SSHServerConnectionOptions:
    _check_host_cert(host_cert)
    return asyncssh.SSHServerConnectionOptions(
        server_factory=lambda: NodeSSHHandler(node),
        server_host_keys=[(host_key, host_cert)],
        server_version=SERVER_VERSION,
        kex_algs=_available(KEX_ALGS, get_kex_algs()),
        encryption_algs=_available(ENCRYPTION_ALGS, get_encryption_algs()),
        mac_algs=_available(MAC_ALGS, get_mac_algs()),
        signature_algs=list(SIGNATURE_ALGS),
        compression_algs=None,
        # Certificates only: no authorized_keys, no X.509, no passwords, no GSS.
        authorized_client_keys=None,
        x509_trusted_certs=None,
        public_key_auth=True,
        password_auth=False,
        kbdint_auth=False,
        host_based_auth=False,
        gss_host=None,
        gss_kex=False,
        gss_auth=False,
        login_timeout=LOGIN_TIMEOUT_SECONDS,
        allow_pty=True,
        x11_forwarding=False,
        agent_forwarding=True,  # and then only with permit-agent-forwarding
        line_editor=False,
        encoding=None,
    )


class NodeSSHServer:
    """A listening node SSH server."""

    def __init__(self, node: NodeContext) -> None:
        self._node = node
        config = node.config
        self._options = server_options(node, config.host_key, config.host_cert)
        self._server: asyncio.Server | None = None
        self._recheck: asyncio.Task[None] | None = None
        node.locks.on_change(self.enforce_locks)

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        config = self._node.config

        def new_connection() -> NodeServerConnection:
            return NodeServerConnection(loop, self._options, self._node)

        self._server = await loop.create_server(
            new_connection, config.listen_host, config.listen_port
        )
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
        return int(self._server.sockets[0].getsockname()[1])

    def set_host_credentials(self, key: asyncssh.SSHKey, cert: asyncssh.SSHCertificate) -> None:
        """A renewed host key and certificate, used from the next connection on."""
        self._options = server_options(self._node, key, cert)
        logger.info("node SSH server host certificate replaced")

    def set_user_ca_keys(self, lines: Sequence[str]) -> None:
        """The user CA keys to trust, from the next authentication attempt on."""
        self._node.trusted.replace(lines)
        logger.info("node SSH server trusts %d user CA key(s)", len(lines))

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
) -> NodeSSHServer:
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
    )
    server = NodeSSHServer(node)
    try:
        await server._listen()
    except BaseException:
        with contextlib.suppress(Exception):
            server.close()
        raise
    return server
