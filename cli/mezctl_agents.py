"""`mezctl nodes` and `mezctl proxies`: what joined the cluster, and removing it.

Removing a node or proxy deletes its registration: auth refuses its calls from then on
(heartbeats, renewals, audit events, a proxy's logins), so its certificates lapse within
a day, and a node leaves `mez ls` and the proxy's routing at once.
"""

from __future__ import annotations

import typer

from cli.admin import admin_command, connect
from cli.common import command_group
from cli.render import FormatOpt, show_rows, when


def agents_app(kind: str) -> typer.Typer:
    plural = f"{kind}s"
    app = command_group(help=f"List and remove joined {plural}.")

    @app.command("ls")
    @admin_command
    def ls(
        ctx: typer.Context,
        output: FormatOpt = "text",
    ) -> None:
        from proto.v1 import auth_pb2 as pb

        with connect(ctx) as client:
            agents = client.rpc.ListAgents(pb.ListAgentsRequest(kind=kind)).agents
        rows = [
            {
                "id": a.id,
                "name": a.name,
                "joined": a.created,
                "online": a.online,
                "addrs": list(a.addrs),
                "labels": dict(a.labels),
            }
            for a in agents
        ]
        show_rows(
            rows, output, ["Name", "ID", "Joined", "Online", "Addresses", "Labels"],
            lambda r: [r["name"], r["id"], when(r["joined"]), "yes" if r["online"] else "no",
                       ",".join(r["addrs"]) or "-",
                       ",".join(f"{k}={v}" for k, v in sorted(r["labels"].items())) or "-"],
        )  # fmt: skip

    ls.__doc__ = f"List the {plural} that joined, online or not."

    @app.command("rm")
    @admin_command
    def rm(
        ctx: typer.Context,
        name: str = typer.Argument(..., help="Name or id."),
    ) -> None:
        from proto.v1 import auth_pb2 as pb

        with connect(ctx) as client:
            reply = client.rpc.DeleteAgent(pb.DeleteAgentRequest(id_or_name=name, kind=kind))
        typer.echo(
            f"Removed {kind} {name} ({reply.id}); its calls to auth are refused from now on."
        )

    rm.__doc__ = f"Remove a {kind}: auth refuses its calls from now on."
    return app


def register(app: typer.Typer) -> None:
    app.add_typer(agents_app("node"), name="nodes")
    app.add_typer(agents_app("proxy"), name="proxies")
