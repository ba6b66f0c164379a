"""How a Mezite CLI ends on an error: the error vocabulary as one line, a hint and an
exit code; any other error (a bug) as one line naming the log file that has its
traceback (with --debug, the traceback itself). Free of the command-line framework, so
that `mez ssh`'s fast path (cli/mez.py) ends the same way as every other command."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping

from proto.errors import MeziteError

Hints = Mapping[type[MeziteError], str]


def error_line(text: str) -> None:
    """``text`` on stderr, red where a person reads it (as click's secho does)."""
    if sys.stderr.isatty() and not os.environ.get("NO_COLOR"):
        text = f"\x1b[31m{text}\x1b[0m"
    print(text, file=sys.stderr, flush=True)


def report(err: MeziteError) -> None:
    error_line(f"error: {err.message}")
    if err.hint:
        print(f"hint: {err.hint}", file=sys.stderr, flush=True)


def exit_code(prog: str, err: MeziteError, default_hints: Hints | None = None) -> int:
    """Report a Mezite error; hints do not cross the wire, so a CLI names its own way
    out per error class."""
    import logging  # not on the paths that never fail (`mez --help`, `mez ssh`)

    logging.getLogger(__name__).debug("%s failed", prog, exc_info=True)
    if err.hint is None and default_hints:
        err.hint = next((h for cls, h in default_hints.items() if isinstance(err, cls)), None)
    report(err)
    return err.exit_code


def report_unexpected(prog: str, exc: Exception) -> int:
    from cli import crashlog

    what = f"error: unexpected {type(exc).__name__} (a bug in {prog})"
    try:
        path = crashlog.write(prog, exc)
    except OSError as failed:
        error_line(f"{what}; rerun with --debug for details (no log: {failed})")
    else:
        error_line(f"{what}; details in {path}")
    return 1


def guarded(prog: str, default_hints: Hints | None, command: Callable[[], int]) -> int:
    """``command``'s exit code, or the reported error's."""
    try:
        return command()
    except MeziteError as err:
        return exit_code(prog, err, default_hints)
    except Exception as exc:
        return report_unexpected(prog, exc)
