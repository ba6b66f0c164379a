"""`mezctl`: Mezite cluster control: run the auth service and administer it."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.common import run, version_callback

app = typer.Typer(help="Mezite cluster control: run the auth service and administer it.", no_args_is_help=True, add_completion=True)


@app.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option("--version", callback=version_callback("mezctl"), is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Mezite cluster control: run the auth service and administer it."""


def main() -> None:
    run(app, "mezctl")
