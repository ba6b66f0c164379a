"""`mez`, the Mezite user client: the entry point.

`mez ssh ...` goes straight to cli/mez_ssh.py, without the command-line framework
(typer and click are a third of its start-up): the same arguments reach the same code,
and errors end the same way (cli/reporting.py). Everything else, and `mez ssh --help` or
shell completion, goes to the typer app in cli/mez_app.py."""

from __future__ import annotations

import os
import sys

from cli.reporting import Hints
from proto.errors import NotAuthenticated

HINTS: Hints = {NotAuthenticated: "run `mez login`"}


def takes_fast_path(argv: list[str]) -> bool:
    return (
        argv[:1] == ["ssh"]
        and "--help" not in argv[1:]  # typer's help (or a remote command's: typer is right)
        and "_MEZ_COMPLETE" not in os.environ  # typer's completion protocol
    )


def main() -> None:
    argv = sys.argv[1:]
    if takes_fast_path(argv):
        from cli.mez_ssh import framework_args, ssh
        from cli.reporting import guarded

        sys.exit(guarded("mez", HINTS, lambda: ssh(framework_args(argv[1:]))))
    from cli.mez_app import main as app_main

    app_main()
