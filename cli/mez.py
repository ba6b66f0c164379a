"""`mez`: Mezite user client: log in, list nodes, ssh and scp."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.common import run, version_callback

app = typer.Typer(
    help="Mezite user client: log in, list nodes, ssh and scp.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=version_callback("mez"), is_eager=True, help="Show the version."
        ),
    ] = False,
) -> None:
    """Mezite user client: log in, list nodes, ssh and scp."""


def main() -> None:
    run(app, "mez")
