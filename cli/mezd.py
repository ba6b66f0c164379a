"""`mezd`: Mezite node agent: join a cluster and serve SSH."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.common import run, version_callback

app = typer.Typer(
    help="Mezite node agent: join a cluster and serve SSH.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=version_callback("mezd"), is_eager=True, help="Show the version."
        ),
    ] = False,
) -> None:
    """Mezite node agent: join a cluster and serve SSH."""


def main() -> None:
    run(app, "mezd")
