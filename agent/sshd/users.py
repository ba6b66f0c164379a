"""Logins to OS accounts: who a session runs as."""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass
from typing import Protocol

# A login is a principal of a Mezite certificate, already free of separators and
# wildcards; this bound only keeps an odd one from reaching the system's user database.
MAX_LOGIN_BYTES = 255


@dataclass(frozen=True)
class OSUser:
    name: str
    uid: int
    gid: int
    home: str
    shell: str
    groups: tuple[int, ...]


class UserLookup(Protocol):
    def lookup(self, login: str) -> OSUser | None:
        """The OS account for ``login``, or None when there is none."""
        ...


class SystemUserLookup:
    """The system's user database (``/etc/passwd``, NSS)."""

    def lookup(self, login: str) -> OSUser | None:
        if not login or len(login.encode()) > MAX_LOGIN_BYTES or "\0" in login:
            return None
        try:
            entry = pwd.getpwnam(login)
        except KeyError:
            return None
        groups = tuple(os.getgrouplist(entry.pw_name, entry.pw_gid))
        return OSUser(
            name=entry.pw_name,
            uid=entry.pw_uid,
            gid=entry.pw_gid,
            home=entry.pw_dir or "/",
            shell=entry.pw_shell or "/bin/sh",
            groups=groups,
        )


def login_refusal(user: OSUser, daemon_uid: int) -> str | None:
    """Why ``user`` may not log in on a daemon running as ``daemon_uid``, or None.

    Only root can start processes as another user; a daemon run as an ordinary user
    would otherwise run every session with its own rights, whatever login was asked."""
    if daemon_uid == 0 or user.uid == daemon_uid:
        return None
    return "the node's SSH service does not run as root and can only log in its own user"
