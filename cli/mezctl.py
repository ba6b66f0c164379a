"""`mezctl`: Mezite cluster control: run the auth service and administer it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from cli import mezctl_admin, mezctl_agents, mezctl_locks, mezctl_spiffe
from cli.admin import (
    AuthServerOpt,
    ConfigOpt,
    Connection,
    DataDirOpt,
    admin_command,
    connect,
    connection,
)
from cli.common import (
    DebugOpt,
    command_group,
    joined,
    print_json,
    raise_open_file_limit,
    run,
    setup_logging,
    version_callback,
)
from cli.render import FormatOpt

app = command_group(
    help="Mezite cluster control: run the auth service and administer it.",
)

StartDataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Data directory (default: the platform's user data dir)."),
]


@app.callback()
def main_options(
    ctx: typer.Context,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    auth_server: AuthServerOpt = None,
    debug: DebugOpt = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=version_callback("mezctl"),
            is_eager=True,
            help="Show the version.",
        ),
    ] = False,
) -> None:
    """Mezite cluster control: run the auth service and administer it."""
    ctx.obj = Connection(data_dir, config, joined(auth_server))


@app.command()
def start(
    ctx: typer.Context,
    data_dir: StartDataDirOpt = None,
    config: ConfigOpt = None,
    listen: Annotated[
        str | None, typer.Option("--listen", help="Auth gRPC address (default 0.0.0.0:3025).")
    ] = None,
    cluster_name: Annotated[
        str | None, typer.Option("--cluster-name", help="Cluster name (first start only).")
    ] = None,
    web_listen: Annotated[
        str | None, typer.Option("--web-listen", help="Proxy HTTPS address (default 0.0.0.0:3080).")
    ] = None,
    ssh_listen: Annotated[
        str | None,
        typer.Option("--proxy-ssh-listen", help="Proxy SSH address (default 0.0.0.0:3023)."),
    ] = None,
    roles: Annotated[
        str | None, typer.Option("--roles", help="Comma list of auth, proxy (default both).")
    ] = None,
    log_level: Annotated[str | None, typer.Option("--log-level", help="DEBUG..ERROR.")] = None,
    auth_server: Annotated[
        list[str] | None,
        typer.Option(
            "--auth-server",
            help="Proxy only: auth's host:port; several as A,B or the flag repeated.",
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token", help="Proxy only, first start: the join token (mezctl tokens add)."
        ),
    ] = None,
    ca_pin: Annotated[
        str | None, typer.Option("--ca-pin", help="Proxy only, first start: the cluster CA pin.")
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Proxy only: its name (default: hostname).")
    ] = None,
    join_method: Annotated[
        str | None,
        typer.Option(
            "--join-method", help="Proxy only, first start: token (default) or iam (AWS identity)."
        ),
    ] = None,
    aws_region: Annotated[
        str | None,
        typer.Option("--aws-region", help="Proxy only, --join-method iam: the AWS region."),
    ] = None,
) -> None:
    """Run the auth service and the proxy (or either alone) until SIGINT or SIGTERM."""
    from server.config import config_file_from_env, resolve_config
    from server.main import run as run_server

    given = connection(ctx).overridden(data_dir, config, joined(auth_server))  # before `start` too
    data_dir, config = given.data_dir, given.config
    cfg = resolve_config(
        config_file=config or config_file_from_env(os.environ),
        env=os.environ,
        flags={
            "data_dir": data_dir,
            "auth.listen_addr": listen,
            "proxy.web_listen_addr": web_listen,
            "proxy.ssh_listen_addr": ssh_listen,
            "cluster_name": cluster_name,
            "roles": roles,
            "log_level": log_level,
            "auth_server": given.auth_server,
            "join_token": token,
            "ca_pin": ca_pin,
            "proxy.name": name,
            "join_method": join_method,
            "aws_region": aws_region,
        },
    )
    setup_logging(cfg.log_level)
    raise_open_file_limit()
    run_server(cfg)


@app.command()
@admin_command
def status(ctx: typer.Context, output: FormatOpt = "text") -> None:
    """Show the cluster name, CA fingerprints and the CA pin for joins and logins."""
    from proto.v1 import auth_pb2 as pb

    with connect(ctx) as client:
        reply = client.rpc.GetClusterStatus(pb.GetClusterStatusRequest())
    if output == "json":
        print_json(
            {
                "cluster_name": reply.cluster_name,
                "server_version": reply.server_version,
                "ca_pin": reply.ca_pin,
                "authorities": {ca.kind: ca.fingerprint for ca in reply.authorities},
                "auth_server": client.addr,
            }
        )
        return
    typer.echo(f"Cluster:      {reply.cluster_name}")
    typer.echo(f"Version:      {reply.server_version}")
    typer.echo(f"Auth server:  {client.addr}")
    for ca in reply.authorities:
        typer.echo(f"{ca.kind + ' CA:':<14}{' ' if len(ca.kind) > 9 else ''}{ca.fingerprint}")
    typer.echo(f"CA pin:       {reply.ca_pin}")


for module in (mezctl_admin, mezctl_agents, mezctl_locks, mezctl_spiffe):
    module.register(app)


def main() -> None:
    run(app, "mezctl")
