"""Pieces every CLI shares: the version option and the one error handler."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import NoReturn, TypeVar

import typer

from proto import __version__
from proto.errors import MeziteError

T = TypeVar("T")


def version_callback(prog: str) -> Callable[[bool], None]:
    def show(value: bool) -> None:
        if value:
            typer.echo(f"{prog} {__version__}")
            raise typer.Exit()

    return show


def fail(err: MeziteError) -> NoReturn:
    """Print one clear line (and a hint) to stderr and exit with the error's code."""
    typer.secho(f"error: {err.message}", fg=typer.colors.RED, err=True)
    if err.hint:
        typer.echo(f"hint: {err.hint}", err=True)
    raise typer.Exit(err.exit_code)


def run(app: typer.Typer, prog: str) -> None:
    """Entry point wrapper: turn Mezite errors into one line and an exit code."""
    try:
        app(prog_name=prog)
    except MeziteError as err:
        typer.secho(f"error: {err.message}", fg=typer.colors.RED, err=True)
        if err.hint:
            typer.echo(f"hint: {err.hint}", err=True)
        sys.exit(err.exit_code)
