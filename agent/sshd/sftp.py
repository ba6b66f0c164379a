"""File transfer: the ``sftp`` subsystem and legacy scp.

Both run as the login user in a child process, never in the root daemon: SFTP through
OpenSSH's ``sftp-server`` (whose path differs between distributions), legacy
``scp -O`` as the ordinary exec of ``scp -t``/``scp -f`` it is. OpenSSH 9's ``scp`` uses
SFTP and needs nothing more."""

from __future__ import annotations

import os
import shlex

SFTP_SUBSYSTEM = "sftp"
SFTP_SERVER_PATHS = (
    "/usr/lib/openssh/sftp-server",  # Debian, Ubuntu
    "/usr/libexec/openssh/sftp-server",  # Fedora, RHEL
    "/usr/libexec/sftp-server",  # Alpine, macOS
    "/usr/lib/ssh/sftp-server",  # Arch, openSUSE
    "/usr/lib/misc/sftp-server",  # Gentoo
)


def find_sftp_server(configured: str | None = None) -> str | None:
    """The sftp-server program to run, or None when this host has none."""
    candidates = (configured,) if configured else SFTP_SERVER_PATHS
    for path in candidates:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


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
