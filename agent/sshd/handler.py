"""asyncssh's per-connection callbacks: certificate-only authentication, and what an
authenticated user may open (sessions, forwards). Everything not named here is
refused by asyncssh's defaults (X11, tun/tap, UNIX-socket forwards)."""

from __future__ import annotations

import logging

import asyncssh

from agent.sshd.connection import NodeServerConnection
from agent.sshd.context import AuthorizedLogin, NodeContext
from agent.sshd.forwarding import audit_forward, local_forward, remote_forward
from agent.sshd.policy import AuthRefused
from agent.sshd.session import NodeSession

logger = logging.getLogger(__name__)

# As OpenSSH's MaxSessions.
MAX_SESSIONS_PER_CONNECTION = 10


class NodeSSHHandler(asyncssh.SSHServer):
    def __init__(self, node: NodeContext) -> None:
        self._node = node
        self._conn: NodeServerConnection | None = None
        self._username = ""
        self._sessions: set[NodeSession] = set()

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        assert isinstance(conn, NodeServerConnection)
        self._conn = conn
        self._node.connections.add(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        conn = self._conn
        if conn is None:
            return
        self._node.connections.discard(conn)
        if conn.authorized is None and self._username and conn.auth_failures == 0:
            # The client asked to log in but never offered a certificate (a password
            # or keyboard-interactive client, which is never offered those methods).
            conn.refuse(self._username, _no_certificate())

    # -- authentication -------------------------------------------------------------

    def begin_auth(self, username: str) -> bool:
        self._username = username
        return True  # always: returning False would let the client in unauthenticated

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return False  # plain keys never; certificates are checked by the connection

    def validate_ca_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return self._node.trusted.trusts(key.public_data)

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return False

    def host_based_auth_supported(self) -> bool:
        return False

    # -- channels -------------------------------------------------------------------

    def _authorized(self) -> AuthorizedLogin | None:
        return self._conn.authorized if self._conn is not None else None

    def session_requested(self) -> NodeSession | bool:
        login = self._authorized()
        if login is None:
            return False
        self._sessions = {s for s in self._sessions if not s.closed}
        if len(self._sessions) >= MAX_SESSIONS_PER_CONNECTION:
            logger.info("refused session for %s: too many sessions", login.login)
            return False
        session = NodeSession(self._node, login)
        self._sessions.add(session)
        assert self._conn is not None
        self._conn.sessions = self._sessions
        return session

    def connection_requested(
        self, dest_host: str, dest_port: int, orig_host: str, orig_port: int
    ) -> bool:
        login = self._authorized()
        if login is None:
            return False
        decision = local_forward(login)
        audit_forward(
            self._node.audit,
            login,
            direction="local",
            host=dest_host,
            port=dest_port,
            decision=decision,
        )
        if not decision.allowed:
            raise asyncssh.ChannelOpenError(
                asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED, decision.reason
            )
        return True

    def server_requested(self, listen_host: str, listen_port: int) -> bool:
        login = self._authorized()
        if login is None:
            return False
        decision = remote_forward(login, listen_host, listen_port)
        audit_forward(
            self._node.audit,
            login,
            direction="remote",
            host=listen_host,
            port=listen_port,
            decision=decision,
        )
        return decision.allowed


def _no_certificate() -> AuthRefused:
    return AuthRefused("no certificate offered; only Mezite certificates are accepted")
