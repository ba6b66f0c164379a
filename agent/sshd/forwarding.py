"""Port and agent forwarding: what a certificate permits, and the audit of each try."""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass

from agent.sshd.config import AuditSink
from agent.sshd.context import AuthorizedLogin, emit_login_event

logger = logging.getLogger(__name__)

# OpenSSH's GatewayPorts=no: a remote forward listens on the node's loopback only.
# OpenSSH clients send "localhost" unless told otherwise.
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
FIRST_UNPRIVILEGED_PORT = 1024


@dataclass(frozen=True)
class ForwardDecision:
    allowed: bool
    reason: str = ""


def local_forward(login: AuthorizedLogin) -> ForwardDecision:
    """``ssh -L`` / ``-W``: the node connects out on the user's behalf."""
    if not login.identity.permit_port_forwarding:
        return ForwardDecision(False, "certificate does not permit port forwarding")
    return ForwardDecision(True)


def remote_forward(login: AuthorizedLogin, listen_host: str, listen_port: int) -> ForwardDecision:
    """``ssh -R``: the node listens on the user's behalf."""
    if not login.identity.permit_port_forwarding:
        return ForwardDecision(False, "certificate does not permit port forwarding")
    if listen_host not in LOOPBACK_HOSTS:
        return ForwardDecision(False, "remote forwards listen on loopback only")
    if 0 < listen_port < FIRST_UNPRIVILEGED_PORT and login.os_user.uid != 0:
        # The daemon runs as root; without this any login could bind a system port.
        return ForwardDecision(False, "privileged ports are reserved to root logins")
    return ForwardDecision(True)


def audit_forward(
    audit: AuditSink,
    login: AuthorizedLogin,
    *,
    direction: str,
    host: str,
    port: int,
    decision: ForwardDecision,
) -> None:
    if not decision.allowed:
        logger.info(
            "refused %s forward for %s to %s:%d: %s",
            direction,
            login.login,
            host[:255],
            port,
            decision.reason,
        )
    emit_login_event(
        audit,
        "port_forward",
        login,
        success=decision.allowed,
        direction=direction,
        host=host[:255],
        port=port,
        allowed=decision.allowed,
        reason=decision.reason or None,
    )


def hand_agent_socket(path: str, login: AuthorizedLogin, *, daemon_uid: int) -> str | None:
    """Make asyncssh's forwarded-agent socket usable by the login user, or None.

    asyncssh creates the socket in a private temporary directory owned by the daemon;
    a session running as another user needs both handed over. Only a directory that
    is exactly that (ours, mode 0700) is handed over, never a shared one like /tmp."""
    user = login.os_user
    if daemon_uid != 0 or user.uid == daemon_uid:
        return path
    parent = os.path.dirname(path)
    try:
        info = os.lstat(parent)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != daemon_uid:
            raise PermissionError("agent socket directory is not the daemon's")
        if stat.S_IMODE(info.st_mode) != 0o700:
            raise PermissionError("agent socket directory is not private")
        os.chown(path, user.uid, user.gid, follow_symlinks=False)
        os.chown(parent, user.uid, user.gid, follow_symlinks=False)
    except OSError as exc:
        logger.warning("agent forwarding unavailable for %s: %s", login.login, exc)
        return None
    return path
