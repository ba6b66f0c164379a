"""File transfer: the ``sftp`` subsystem and legacy scp.

Both run as the login user in a child process, never in the root daemon. SFTP is
served by OpenSSH's ``sftp-server`` when the host has one (its path differs between
distributions), else by the built-in server (sftp_child.py, asyncssh's SFTP server,
which makes itself the login user before it reads the client). Legacy ``scp -O`` is
the ordinary exec of ``scp -t``/``scp -f`` it is; OpenSSH 9's ``scp`` uses SFTP."""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.sshd.users import OSUser
from proto.errors import BadParameter

SFTP_SUBSYSTEM = "sftp"
SFTP_SERVER_PATHS = (
    "/usr/lib/openssh/sftp-server",  # Debian, Ubuntu
    "/usr/libexec/openssh/sftp-server",  # Fedora, RHEL
    "/usr/libexec/sftp-server",  # Alpine, macOS
    "/usr/lib/ssh/sftp-server",  # Arch, openSUSE
    "/usr/lib/misc/sftp-server",  # Gentoo
)
# The settings of `mezd start --sftp-server`, besides the path of a program.
SFTP_AUTO = "auto"  # the system's sftp-server, else the built-in one
SFTP_BUILTIN = "builtin"
SFTP_NONE = "none"
SFTP_CHILD = str(Path(__file__).with_name("sftp_child.py"))
MAX_CLIENT_VERSION = 255  # RFC 4253 section 4.2


@dataclass(frozen=True)
class SFTPService:
    """How this node answers the sftp subsystem: an sftp-server program run as the
    user, the built-in server, or (neither) a refusal."""

    program: str | None = None
    builtin: bool = False

    @property
    def refused(self) -> bool:
        return self.program is None and not self.builtin

    def describe(self) -> str:
        if self.program is not None:
            return self.program
        return SFTP_BUILTIN if self.builtin else SFTP_NONE


def _executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def find_sftp_server(search: Sequence[str] = SFTP_SERVER_PATHS) -> str | None:
    """The system's sftp-server program, or None when this host has none."""
    return next((path for path in search if _executable(path)), None)


def resolve_sftp(setting: str, search: Sequence[str] = SFTP_SERVER_PATHS) -> SFTPService:
    """The service for a ``--sftp-server`` setting; BadParameter when it names no
    usable program (a typo must not quietly become another server)."""
    if setting == SFTP_AUTO:
        program = find_sftp_server(search)
        return SFTPService(program=program) if program else SFTPService(builtin=True)
    if setting == SFTP_BUILTIN:
        return SFTPService(builtin=True)
    if setting == SFTP_NONE:
        return SFTPService()
    if not os.path.isabs(setting):
        raise BadParameter(
            f"--sftp-server {setting!r}: give auto, builtin, none or an absolute path",
            hint="auto (the default) uses the system's sftp-server, else the built-in one",
        )
    if not _executable(setting):
        raise BadParameter(
            f"--sftp-server {setting}: not an executable file",
            hint="--sftp-server builtin serves SFTP without OpenSSH's sftp-server",
        )
    return SFTPService(program=setting)


def builtin_argv(user: OSUser, *, switch_user: bool, client_version: str) -> list[str]:
    """The command line of the built-in server. It starts as the daemon's user, so
    when that is root it is told whom to become; only mezd writes these arguments."""
    version = "".join(c for c in client_version[:MAX_CLIENT_VERSION] if " " <= c <= "~")
    # --name=value: a value that starts with "-" is still a value.
    argv = [sys.executable, "-I", SFTP_CHILD, f"--home={user.home}", f"--client-version={version}"]
    if switch_user:
        groups = ",".join(str(g) for g in user.groups)
        argv += [f"--uid={user.uid}", f"--gid={user.gid}", f"--groups={groups}"]
    return argv


def scp_mode(command: str) -> str | None:
    """``"upload"`` or ``"download"`` for a legacy scp server command, else None."""
    if not command.startswith("scp "):
        return None
    try:
        words = shlex.split(command)
    except ValueError:
        return "unknown"
    flags = "".join(w[1:] for w in words[1:] if w.startswith("-") and not w.startswith("--"))
    if "t" in flags:
        return "upload"
    if "f" in flags:
        return "download"
    return "unknown"
