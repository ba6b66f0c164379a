"""Private files: written atomically, created with their final permissions, and checked
before they are trusted."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from proto.errors import AccessDenied, BadParameter


def refuse_read_only(path: Path) -> None:
    """Refuse a data dir on a read-only file system up front, by name, rather than with
    whatever the first write fails with ("unable to open database file"). A file system
    the kernel remounted read-only after disk errors is the usual way to get one."""
    try:
        read_only = bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return  # missing or unreadable: whoever opens it says which
    if read_only:
        raise BadParameter(
            f"the data dir {path} is on a read-only file system",
            hint="remount it read-write (check the disk if the kernel made it read-only), "
            "or choose another --data-dir",
        )


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (0700) if missing; refuse one that others can write to."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = path.stat().st_mode
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise AccessDenied(
            f"{path} is writable by other users",
            hint=f"chmod 700 {path}",
        )
    return path


def write_private(path: Path, data: bytes | str, mode: int = 0o600) -> None:
    """Write atomically: a temp file in the same directory, fsync, rename."""
    payload = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as out:
            out.write(payload)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_private_file(path: Path) -> Path:
    """Refuse a key file that users other than its owner can read or write."""
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise AccessDenied(
            f"{path} is accessible by other users",
            hint=f"chmod 600 {path}",
        )
    return path


def check_strict(path: Path, *, directory: bool = False, secret: bool = False) -> None:
    """Refuse what OpenSSH's StrictModes refuses, and symbolic links, before a file is
    used: a file (or directory) must be what we wrote, owned by us (or root), and not
    writable by others; a ``secret`` not readable by others either. A missing one passes:
    what is missing is the caller's to report. Each refusal is one line naming the path."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise AccessDenied(
            f"{path} is a symbolic link; refusing to use it",
            hint="replace it with the file itself (or remove it and log in again)",
        )
    if directory != stat.S_ISDIR(st.st_mode) or not (directory or stat.S_ISREG(st.st_mode)):
        kind = "directory" if directory else "regular file"
        raise AccessDenied(f"{path} is not a {kind}; refusing to use it")
    if st.st_uid not in (os.getuid(), 0):
        raise AccessDenied(
            f"{path} is owned by another user (uid {st.st_uid})",
            hint=f"chown {os.getuid()} {path}",
        )
    loose = (stat.S_IRWXG | stat.S_IRWXO) if secret else (stat.S_IWGRP | stat.S_IWOTH)
    if st.st_mode & loose:
        what = "accessible" if secret else "writable"
        mode = "700" if directory else "600" if secret else "644"
        raise AccessDenied(f"{path} is {what} by other users", hint=f"chmod {mode} {path}")
