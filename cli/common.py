"""Pieces every CLI shares: the version option, logging, output and the one error
handler that turns the error vocabulary into a line, a hint and an exit code."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from typing import Any

import typer

from proto import __version__
from proto.errors import MeziteError


def version_callback(prog: str) -> Callable[[bool], None]:
    def show(value: bool) -> None:
        if value:
            typer.echo(f"{prog} {__version__}")
            raise typer.Exit()

    return show


def setup_logging(level: str) -> None:
    """Library code logs; this sends it to stderr."""
    logging.basicConfig(
        stream=sys.stderr,
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=True))


def report(err: MeziteError) -> None:
    typer.secho(f"error: {err.message}", fg=typer.colors.RED, err=True)
    if err.hint:
        typer.echo(f"hint: {err.hint}", err=True)


def run(
    app: typer.Typer, prog: str, default_hints: dict[type[MeziteError], str] | None = None
) -> None:
    """Entry point wrapper: Mezite errors become one line, a hint and an exit code.
    Hints do not cross the wire, so a CLI can name its own way out per error class."""
    try:
        app(prog_name=prog, standalone_mode=True)
    except MeziteError as err:
        if err.hint is None and default_hints:
            err.hint = next((h for cls, h in default_hints.items() if isinstance(err, cls)), None)
        report(err)
        sys.exit(err.exit_code)
