"""`mezd`: Mezite node agent: join a cluster and serve SSH."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Annotated

# Sessions fork child processes while gRPC's threads run; gRPC's fork handlers would
# abort those children (they only exec, so they need none). It must be set before grpc
# loads, and anything may load it (the spiffe package does): so first, for every command.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")

import typer

from cli.common import (
    DebugOpt,
    command_group,
    joined,
    raise_open_file_limit,
    run,
    setup_logging,
    version_callback,
)
from cli.render import parse_labels, split_list

app = command_group(
    help="Mezite node agent: join a cluster and serve SSH.",
)

DataDirOpt = Annotated[
    Path | None, typer.Option("--data-dir", help="Node state (default: the platform's data dir).")
]
TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token", help="One-time join token, or an IAM token's name (--join-method iam)."
    ),
]
JoinMethodOpt = Annotated[
    str,
    typer.Option(
        "--join-method",
        help="token (a one-time token) or iam (prove this machine's AWS identity).",
    ),
]
RegionOpt = Annotated[
    str | None,
    typer.Option(
        "--aws-region",
        help="AWS region for --join-method iam (default: AWS_REGION, the AWS config, "
        "or the instance's).",
    ),
]
AuthOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--auth-server",
        help="Auth service HOST:PORT; several as A,B or the flag repeated (tried in order).",
    ),
]
PinOpt = Annotated[str | None, typer.Option("--ca-pin", help="sha256:... from `mezctl status`.")]
NameOpt = Annotated[str | None, typer.Option("--name", help="Node name (default: hostname).")]
LabelsOpt = Annotated[str | None, typer.Option("--labels", help="k=v,... labels.")]
AdvertiseOpt = Annotated[
    str | None,
    typer.Option(
        "--advertise-addr",
        help="HOST:PORT,... users reach this node at; its host certificate names them "
        "(default: the listen address, or on 0.0.0.0 / :: this machine's addresses and "
        "host name, kept current while it runs).",
    ),
]


@app.callback()
def main_options(
    debug: DebugOpt = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=version_callback("mezd"), is_eager=True, help="Show the version."
        ),
    ] = False,
) -> None:
    """Mezite node agent: join a cluster and serve SSH."""


def _data_dir(data_dir: Path | None) -> Path:
    from proto.files import refuse_read_only

    if data_dir is not None:
        path = data_dir.expanduser()
    else:
        import platformdirs

        path = Path(platformdirs.user_data_dir("mezite-node"))
    refuse_read_only(path)
    return path


def _join(
    data_dir: Path,
    token: str | None,
    auth_server: str | None,
    ca_pin: str | None,
    name: str | None,
    labels: str | None,
    advertise_addr: str | None,
    join_method: str = "token",
    aws_region: str | None = None,
) -> None:
    from agent.join import JOIN_METHODS, JoinRequest, join
    from proto.errors import BadParameter

    missing = [flag for flag, value in (("--token", token), ("--auth-server", auth_server),
               ("--ca-pin", ca_pin)) if not value]  # fmt: skip
    if missing:
        raise BadParameter(
            f"joining needs {', '.join(missing)}",
            hint="`mezctl tokens add --type node` prints the whole line",
        )
    assert token and auth_server and ca_pin
    if join_method not in JOIN_METHODS:
        raise BadParameter(f"unknown --join-method {join_method[:32]!r}; use token or iam")
    identity = join(
        JoinRequest(
            join_method=join_method,
            aws_region=aws_region,
            token=token,
            auth_server=auth_server,
            ca_pin=ca_pin,
            name=name or socket.gethostname().lower().split(".")[0],
            labels=parse_labels(labels),
            advertise_addrs=split_list(advertise_addr),
        ),
        data_dir,
    )
    typer.echo(
        f"Joined cluster {identity.cluster_name} as {identity.name} ({identity.agent_id}); "
        f"state in {data_dir}."
    )


@app.command("join")
def join_cmd(
    token: TokenOpt = None,
    auth_server: AuthOpt = None,
    ca_pin: PinOpt = None,
    name: NameOpt = None,
    labels: LabelsOpt = None,
    advertise_addr: AdvertiseOpt = None,
    data_dir: DataDirOpt = None,
    join_method: JoinMethodOpt = "token",
    aws_region: RegionOpt = None,
) -> None:
    """Join a cluster with a one-time token (or an AWS identity), verifying the auth
    server by its CA pin."""
    setup_logging("WARNING")
    _join(_data_dir(data_dir), token, joined(auth_server), ca_pin, name, labels, advertise_addr,
          join_method, aws_region)  # fmt: skip
    typer.echo("Start serving with `mezd start`.")


@app.command("start")
def start_cmd(
    data_dir: DataDirOpt = None,
    listen: Annotated[str, typer.Option("--listen", help="SSH listen address.")] = "0.0.0.0:3022",
    token: TokenOpt = None,
    auth_server: AuthOpt = None,
    ca_pin: PinOpt = None,
    name: NameOpt = None,
    labels: LabelsOpt = None,
    advertise_addr: AdvertiseOpt = None,
    heartbeat: Annotated[
        float, typer.Option("--heartbeat-interval", help="Seconds between heartbeats.")
    ] = 30.0,
    sftp_server: Annotated[
        str,
        typer.Option(
            "--sftp-server",
            help="auto (the system's sftp-server, else built-in), builtin, none, or a PATH.",
        ),
    ] = "auto",
    recording_max_bytes: Annotated[
        int,
        typer.Option(
            "--recording-max-bytes",
            min=4096,
            help="Cap on one session's recording; past it the recording stops, marked truncated.",
        ),
    ] = 64 * 1024 * 1024,
    log_level: Annotated[str, typer.Option("--log-level", help="DEBUG..ERROR.")] = "INFO",
    join_method: JoinMethodOpt = "token",
    aws_region: RegionOpt = None,
    workload_api: Annotated[
        str | None,
        typer.Option(
            "--workload-api",
            help="Serve the SPIFFE Workload API at unix:///PATH (off by default; under "
            "systemd: unix:///run/mezite/workload.sock, with RuntimeDirectory=mezite). Any "
            "local process may connect; each call is attested by the kernel and gets the "
            "SVIDs auth's workload rules give it (`mezctl spiffe workloads`). Needs the "
            "spiffe package (the mezite\\[spiffe] extra).",
        ),
    ] = None,
) -> None:
    """Serve SSH on this node (joining first when given a token and not yet joined)."""
    from agent.identity import IDENTITY_FILE
    from agent.node import NodeSettings
    from agent.node import run as run_node
    from agent.sshd.sftp import resolve_sftp
    from proto.addr import HostPort

    resolve_sftp(sftp_server)  # a bad setting fails before joining or listening

    if workload_api:  # GRPC_ENABLE_FORK_SUPPORT is set (top of module): spiffe loads grpc
        from agent.workload_api import check_workload_api

        check_workload_api(workload_api)
    setup_logging(log_level)
    raise_open_file_limit()
    directory = _data_dir(data_dir)
    if not (directory / IDENTITY_FILE).exists() and token:
        _join(directory, token, joined(auth_server), ca_pin, name, labels, advertise_addr,
              join_method, aws_region)  # fmt: skip
    addr = HostPort.parse(listen, 3022)
    run_node(NodeSettings(data_dir=directory, listen_host=addr.host, listen_port=addr.port,
                          heartbeat_interval=heartbeat, sftp_server=sftp_server,
                          recording_max_bytes=recording_max_bytes,
                          workload_api=workload_api))  # fmt: skip


identity_app = command_group(
    help="Agent identities: short-lived SSH credentials for machines (CI, Ansible).",
)
app.add_typer(identity_app, name="identity")


@identity_app.command("start")
def identity_start(
    dest: Annotated[Path, typer.Option("--dest", help="Where to write key, cert, ssh_config.")],
    token: TokenOpt = None,
    auth_server: AuthOpt = None,
    ca_pin: PinOpt = None,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Identity state (default: platform dir).")
    ] = None,
    oneshot: Annotated[
        bool, typer.Option("--oneshot", help="Bootstrap or renew once, write, and exit.")
    ] = False,
    log_level: Annotated[str, typer.Option("--log-level", help="DEBUG..ERROR.")] = "INFO",
) -> None:
    """Bootstrap (first run) and keep renewing an agent identity's credentials."""
    import asyncio

    from agent import bot
    from proto.errors import BadParameter

    setup_logging(log_level)
    if data_dir is None:
        import platformdirs

        data_dir = Path(platformdirs.user_data_dir("mezite-identity"))
    data_dir, dest = data_dir.expanduser(), dest.expanduser()
    with bot.exclusive(data_dir):
        state = bot.BotState.load(data_dir)
        if state is None:
            if not (token and auth_server and ca_pin):
                raise BadParameter(
                    "the first run needs --token, --auth-server and --ca-pin",
                    hint="`mezctl agent-identities add` prints the whole line",
                )
            state = bot.bootstrap(data_dir, token, joined(auth_server) or "", ca_pin)
        elif oneshot:
            state = bot.renew(data_dir, state)
        bot.write_outputs(dest, state)
        typer.echo(
            f"Agent identity {state.name} (generation {state.generation}) written to {dest}; "
            f"use: ssh -F {dest / 'ssh_config'} NODE",
            err=True,
        )
        if not oneshot:
            asyncio.run(bot.run_forever(data_dir, dest, state))


def main() -> None:
    run(app, "mezd")
