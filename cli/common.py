"""Pieces every CLI shares: the version and --debug options, logging, output and the one
error handler that turns the error vocabulary into a line, a hint and an exit code, and
any other error into one line naming the log file that has its traceback."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import typer

from cli.reporting import Hints, exit_code, report_unexpected
from proto import __version__
from proto.errors import MeziteError


def command_group(**options: Any) -> typer.Typer:
    """A (sub)command group of any of the CLIs: no arguments show its help, errors are
    reported by ``run`` (no pretty tracebacks), and help is click's plain text: rich's
    renderer costs more to import than the rest of `mez --help` together."""
    options.setdefault("no_args_is_help", True)
    return typer.Typer(pretty_exceptions_enable=False, rich_markup_mode=None, **options)


@dataclass
class Diagnostics:
    """What `run` needs to know from the command line: set by the --debug option, which
    finds it as the click context's object."""

    debug: bool = False


def _debug_callback(ctx: typer.Context, value: bool) -> None:
    if not value:
        return
    diagnostics = ctx.find_object(Diagnostics)
    if diagnostics is not None:
        diagnostics.debug = True
    # Configured first, so a command's own setup_logging(level) later changes nothing.
    setup_logging("DEBUG")


DebugOpt = Annotated[
    bool,
    typer.Option(
        "--debug",
        callback=_debug_callback,
        is_eager=True,
        help="Log at DEBUG to stderr, and show an unexpected error's traceback.",
    ),
]


def version_callback(prog: str) -> Callable[[bool], None]:
    def show(value: bool) -> None:
        if value:
            typer.echo(f"{prog} {__version__}")
            raise typer.Exit()

    return show


def setup_logging(level: str) -> None:
    """Library code logs; this sends it to stderr. Once configured (by --debug), the
    first setting stays: basicConfig does nothing when the root logger has a handler.
    logging is imported here: `mez --help` and a usage error never need it."""
    import logging

    logging.basicConfig(
        stream=sys.stderr,
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=True))


OPEN_FILES_CAP = 1_048_576  # where the hard limit is unlimited


def run(app: typer.Typer, prog: str, default_hints: Hints | None = None) -> None:
    """Entry point wrapper: Mezite errors become one line, a hint and an exit code.
    Any other error is a bug: its traceback goes to a log file (or, with --debug, to
    stderr) and the user gets one line saying where (cli/reporting.py)."""
    diagnostics = Diagnostics()
    try:
        app(prog_name=prog, standalone_mode=True, obj=diagnostics)
    except MeziteError as err:
        sys.exit(exit_code(prog, err, default_hints))
    except Exception as exc:
        if diagnostics.debug:
            raise
        sys.exit(report_unexpected(prog, exc))


def joined(values: list[str] | None) -> str | None:
    """A repeated address flag (``--auth-server a --auth-server b``) as the one list
    ``a,b`` that the client layer parses (``proto.addr.parse_addr_list``)."""
    return ",".join(values) if values else None


def raise_open_file_limit() -> None:
    """Lift the soft descriptor limit to the hard one (a cap where the hard limit is
    unlimited): every node keeps a connection to auth, and every SSH client one to a
    node, so 1,024 soft would cap a server near a thousand peers."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, OPEN_FILES_CAP)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
