"""Where an unexpected error's traceback goes when --debug is off: a private file in the
platform's user log dir (``<user_log_dir("mezite")>/<prog>.log``), so the user sees one
line naming it and a bug report can still carry the whole story.

The file is appended to, readable by its owner only (tracebacks show paths and values),
and bounded: past ``LIMIT`` bytes it is moved aside to ``<prog>.log.1`` (replacing the
one before), so a command failing in a loop cannot fill the disk.
"""

from __future__ import annotations

import datetime
import os
import sys
import traceback
from pathlib import Path

LIMIT = 1 << 20  # 1 MiB


def log_path(prog: str) -> Path:
    import platformdirs

    return Path(platformdirs.user_log_dir("mezite")) / f"{prog}.log"


def write(prog: str, exc: BaseException) -> Path:
    """Append ``exc``'s traceback to ``prog``'s log file and return its path (OSError when
    it cannot be written)."""
    from proto import __version__

    path = log_path(prog)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        if path.stat().st_size > LIMIT:
            os.replace(path, path.with_name(f"{path.name}.1"))
    except FileNotFoundError:
        pass
    stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    # The command line is left out: it can carry join tokens and invites.
    head = f"--- {stamp} {prog} {__version__} (Python {sys.version.split()[0]})\n"
    text = head + "".join(traceback.format_exception(exc))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as out:
        os.fchmod(fd, 0o600)  # an older file made looser keeps no looser mode
        out.write(text)
    return path
