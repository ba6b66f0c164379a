"""State shared by every connection of one node SSH server, and what one connection
learns when its user is let in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agent.sshd.config import AuditSink, AuditValue, NodeSSHConfig
from agent.sshd.policy import CertIdentity, TrustedUserCAs
from agent.sshd.sftp import SFTPService
from agent.sshd.users import OSUser, UserLookup
from proto.clock import Clock
from proto.event_types import EventType
from proto.lockwatch import LockView

if TYPE_CHECKING:
    from agent.recording import Spool
    from agent.sshd.connection import NodeServerConnection
    from agent.sshd.process import Child


@dataclass
class NodeContext:
    config: NodeSSHConfig
    trusted: TrustedUserCAs
    audit: AuditSink
    clock: Clock
    users: UserLookup
    daemon_uid: int
    sftp: SFTPService
    setsid: str | None
    # The locks in force as this node knows them; consulted at every login.
    locks: LockView
    # Where PTY sessions are recorded (None: not recorded), and who hears of each
    # finished recording (the uploader), called on the event loop with its session id.
    spool: Spool | None = None
    recording_done: Callable[[str], None] | None = None
    # Live session processes, so that closing the server can hang them up.
    children: set[Child] = field(default_factory=set)
    # Open connections, so that closing the server closes them.
    connections: set[NodeServerConnection] = field(default_factory=set)


@dataclass(frozen=True)
class Peer:
    addr: str
    port: int
    local_addr: str
    local_port: int


@dataclass(frozen=True)
class AuthorizedLogin:
    """A connection's user, once the certificate and the login have been accepted."""

    login: str
    os_user: OSUser
    identity: CertIdentity
    peer: Peer

    def lock_refusal(self, node: NodeContext) -> str | None:
        """Why a lock (or the node's own state) refuses this login now, if it does."""
        subject = self.identity.subject(login=self.login, node=node.config.host_id)
        return node.locks.refusal(subject)

    def audit_fields(self) -> dict[str, AuditValue]:
        return {
            "login": self.login,
            "key_id": self.identity.key_id,
            "serial": self.identity.serial,
            "remote_addr": self.peer.addr,
        }


def emit_login_event(
    audit: AuditSink,
    type: EventType,
    login: AuthorizedLogin,
    *,
    success: bool = True,
    session_id: str = "",
    **fields: AuditValue,
) -> None:
    """An audit event about ``login``'s connection: who, from where, with which cert."""
    merged: dict[str, Any] = {**login.audit_fields(), **fields}
    audit.emit(type, user=login.identity.user, success=success, session_id=session_id, **merged)
