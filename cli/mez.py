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


def read_password(from_stdin: bool, *, confirm: bool = False) -> str:
    import sys

    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=confirm))


@app.command("set-password")
def set_password(
    token: Annotated[str, typer.Option("--token", help="The invite token from your admin.")],
    auth_server: Annotated[str, typer.Option("--auth-server", help="HOST:PORT of auth.")],
    ca_pin: Annotated[str, typer.Option("--ca-pin", help="sha256:... from your admin.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin.")
    ] = False,
) -> None:
    """Set your password with an invite (from `mezctl users add` or `users reset`)."""
    from proto.bootstrap import fetch_ca_by_pin
    from proto.client import AuthClient
    from proto.v1 import auth_pb2 as pb

    ca = fetch_ca_by_pin(auth_server, ca_pin)
    password = read_password(password_stdin, confirm=True)
    with AuthClient(auth_server, ca.encode()) as client:
        reply = client.call("AcceptInvite", pb.AcceptInviteRequest(token=token, password=password))
    typer.echo(f"Password set for {reply.username}. Log in with `mez login`.")


def main() -> None:
    run(app, "mez")
