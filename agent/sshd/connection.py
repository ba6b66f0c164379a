"""The server side of one SSH connection, with Mezite's certificate checks in front of
asyncssh's.

asyncssh hands the application only the CA key of an offered certificate
(``SSHServer.validate_ca_key``), never the certificate itself, and it drops unknown
extensions when parsing. The node needs both the certificate and its extensions, so the
connection class is extended at the one method that sees the offered key blob,
``validate_public_key``: Mezite's policy runs first, and only a certificate it accepts
goes on to asyncssh's own validation (CA, type, validity, principal, signature)."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import asyncssh

from agent.sshd.context import AuthorizedLogin, NodeContext, Peer, emit_login_event
from agent.sshd.policy import AuthRefused, check_user_certificate
from agent.sshd.users import login_refusal
from proto.connlimit import Admission
from proto.sshserver import CountedServerConnection

logger = logging.getLogger(__name__)

# As OpenSSH's MaxAuthTries: enough for a client with a few keys, few enough to make
# guessing at scale pointless.
MAX_AUTH_FAILURES = 6
# A refused login is whatever the client sent; keep a bounded prefix.
MAX_AUDITED_LOGIN = 256
MAX_DISCONNECT_REASON = 200
# Time for the sessions' last lines to reach the client before the connection goes.
TERMINATE_GRACE = 0.5

if TYPE_CHECKING:
    from agent.sshd.session import NodeSession


class NodeServerConnection(CountedServerConnection):
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        options: asyncssh.SSHServerConnectionOptions,
        node: NodeContext,
        admission: Admission | None = None,
    ) -> None:
        super().__init__(loop, options, admission)
        self._node = node
        self.authorized: AuthorizedLogin | None = None
        self.auth_failures = 0
        self.sessions: set[NodeSession] = set()
        self.terminated = False

    def peer(self) -> Peer:
        remote = self.get_extra_info("peername") or ("", 0)
        local = self.get_extra_info("sockname") or ("", 0)
        return Peer(str(remote[0]), int(remote[1]), str(local[0]), int(local[1]))

    async def validate_public_key(
        self, username: str, key_data: bytes, msg: bytes, signature: bytes
    ) -> bool:
        try:
            login = self._authorize(username, key_data, signature)
        except AuthRefused as refused:
            self.refuse(username, refused)
            return False
        if not await super().validate_public_key(username, key_data, msg, signature):
            identity = login.identity
            self.refuse(
                username,
                AuthRefused(
                    "certificate or signature rejected by the SSH layer",
                    key_id=identity.key_id,
                    serial=identity.serial,
                    user=identity.user,
                ),
            )
            return False
        if msg:
            # A signed request: asyncssh now reports success to the client.
            self.authorized = login
            logger.info(
                "accepted %s for login %s from %s",
                login.identity.key_id,
                username,
                login.peer.addr,
            )
        return True

    def _authorize(self, login: str, key_data: bytes, signature: bytes) -> AuthorizedLogin:
        node = self._node
        identity = check_user_certificate(
            key_data,
            login,
            signature=signature,
            trusted=node.trusted,
            labels=node.config.labels,
            now=node.clock.now(),
        )

        def refused(reason: str) -> AuthRefused:
            return AuthRefused(
                reason, key_id=identity.key_id, serial=identity.serial, user=identity.user
            )

        os_user = node.users.lookup(login)
        if os_user is None:
            raise refused("no OS account for this login")
        reason = login_refusal(os_user, node.daemon_uid)
        if reason is not None:
            raise refused(reason)
        authorized = AuthorizedLogin(
            login=login, os_user=os_user, identity=identity, peer=self.peer()
        )
        locked = authorized.lock_refusal(node)
        if locked is not None:
            # The one way to tell a refused user why before the connection ends.
            self.send_auth_banner(f"mezd: access denied: {locked}\r\n")
            raise refused(f"locked: {locked}")
        return authorized

    def terminate(self, reason: str) -> None:
        """End this connection because a lock (or the node's state) now refuses its user:
        tell every session why, audit it, and disconnect."""
        login = self.authorized
        if self.terminated or login is None:
            return
        self.terminated = True
        logger.info("ending %s's connection for login %s: %s", login.identity.user,
                    login.login, reason)  # fmt: skip
        for session in list(self.sessions):
            session.end(f"session ended: {reason}")
        emit_login_event(self._node.audit, "session.terminated", login, success=False,
                         reason=reason[:MAX_DISCONNECT_REASON],
                         sessions=len(self.sessions))  # fmt: skip
        asyncio.get_running_loop().call_later(
            TERMINATE_GRACE,
            self.disconnect,
            asyncssh.DISC_BY_APPLICATION,
            reason[:MAX_DISCONNECT_REASON],
        )

    def refuse(self, login: str, refused: AuthRefused) -> None:
        """Record one refused authentication attempt (log and audit, no key material)."""
        self.auth_failures += 1
        peer = self.peer()
        logger.info(
            "refused login %s from %s: %s (key id %r)",
            login,
            peer.addr,
            refused.reason,
            refused.key_id,
        )
        self._node.audit.emit(
            "auth.failed",
            user=refused.user,
            success=False,
            login=login[:MAX_AUDITED_LOGIN],
            reason=refused.reason,
            key_id=refused.key_id,
            serial=refused.serial,
            remote_addr=peer.addr,
        )
        if self.auth_failures >= MAX_AUTH_FAILURES:
            # Not from inside the auth exchange that is still answering this attempt.
            asyncio.get_running_loop().call_soon(
                self.disconnect,
                asyncssh.DISC_NO_MORE_AUTH_METHODS_AVAILABLE,
                "too many authentication failures",
            )

    def check_certificate_permission(self, permission: str) -> bool:
        """Permissions from Mezite's reading of the certificate, not asyncssh's.

        Port forwarding is let through here on purpose: the server's
        ``connection_requested``/``server_requested`` decide it, so that refused
        attempts are audited too (asyncssh would refuse them before asking)."""
        if permission == "port-forwarding":
            return True
        login = self.authorized
        if login is None:
            return False
        if permission == "pty":
            return login.identity.permit_pty
        if permission == "agent-forwarding":
            return login.identity.permit_agent_forwarding
        return False
