"""The environment a session process starts with: built from scratch (nothing of the
daemon's own leaks in), plus the few client variables OpenSSH's usual ``AcceptEnv``
lets through."""

from __future__ import annotations

import re
from collections.abc import Mapping

from agent.sshd.context import AuthorizedLogin

ROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
USER_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/games"
ACCEPTED_ENV = re.compile(r"LANG|LC_[A-Z_]{1,32}|TERM")
MAX_ENV_VALUE = 1024
MAX_CLIENT_ENV = 32


def client_env(requested: Mapping[str, str]) -> dict[str, str]:
    """The client's variables that may reach the session; the rest are dropped
    silently, as OpenSSH does with variables outside AcceptEnv."""
    accepted: dict[str, str] = {}
    for name, value in requested.items():
        if len(accepted) >= MAX_CLIENT_ENV:
            break
        if not ACCEPTED_ENV.fullmatch(name) or len(value) > MAX_ENV_VALUE:
            continue
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            continue
        accepted[name] = value
    return accepted


def session_env(
    login: AuthorizedLogin,
    requested: Mapping[str, str],
    *,
    session_id: str,
    term: str | None = None,
    agent_socket: str | None = None,
) -> dict[str, str]:
    user = login.os_user
    peer = login.peer
    env = client_env(requested)
    env.update(
        HOME=user.home,
        USER=user.name,
        LOGNAME=user.name,
        SHELL=user.shell,
        PATH=ROOT_PATH if user.uid == 0 else USER_PATH,
        SSH_CLIENT=f"{peer.addr} {peer.port} {peer.local_port}",
        SSH_CONNECTION=f"{peer.addr} {peer.port} {peer.local_addr} {peer.local_port}",
        MEZITE_USER=login.identity.user,
        MEZITE_SESSION_ID=session_id,
    )
    if term:
        env["TERM"] = term
    if agent_socket:
        env["SSH_AUTH_SOCK"] = agent_socket
    return env
