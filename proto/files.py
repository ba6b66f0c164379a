"""Private files: written atomically, created with their final permissions, and checked
before they are trusted."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from proto.errors import AccessDenied


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
