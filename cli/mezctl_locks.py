"""`mezctl lock add|ls|rm`: refuse a user, node, agent identity, login or role everywhere.

A lock is stored by auth and pushed to every node and proxy within seconds; there it
refuses new logins and ends live sessions of its target. Deleting a user, an agent
identity or a node, or resetting a user, makes one automatically (listed here, created by
"system"), for as long as the certificates it covers may live.
"""

from __future__ import annotations

from typing import Annotated

import typer

from cli.admin import admin_command, connect
from cli.common import command_group, print_json
from cli.render import FormatOpt, show_rows, when

app = command_group(help="Lock users, nodes, agent identities, logins or roles.")

TARGET_FLAGS = ("--user", "--node", "--agent-identity", "--login", "--role")


@app.command("add")
@admin_command
def add(
    ctx: typer.Context,
    user: Annotated[str | None, typer.Option("--user", help="A user (every incarnation).")] = None,
    node: Annotated[str | None, typer.Option("--node", help="A node, by name or id.")] = None,
    agent_identity: Annotated[
        str | None, typer.Option("--agent-identity", help="An agent identity.")
    ] = None,
    login: Annotated[str | None, typer.Option("--login", help="An OS login on nodes.")] = None,
    role: Annotated[str | None, typer.Option("--role", help="Everyone holding a role.")] = None,
    ttl: Annotated[
        str | None, typer.Option("--ttl", help="Lifetime, e.g. 1h (default: until removed).")
    ] = None,
    reason: Annotated[str, typer.Option("--reason", help="Shown to whoever is refused.")] = "",
    output: FormatOpt = "text",
) -> None:
    """Lock exactly one target: new logins are refused and live sessions end."""
    from proto.errors import BadParameter
    from proto.locks import lock_from_proto
    from proto.resources import parse_duration
    from proto.v1 import auth_pb2 as pb

    values = (user, node, agent_identity, login, role)
    if sum(1 for value in values if value) != 1:
        raise BadParameter(f"give exactly one of {', '.join(TARGET_FLAGS)}")
    target = pb.LockTarget(
        user=user or "", node=node or "", agent_identity=agent_identity or "",
        login=login or "", role=role or "",
    )  # fmt: skip
    seconds = parse_duration(ttl, path="--ttl") if ttl else 0
    with connect(ctx) as client:
        reply = client.rpc.CreateLock(
            pb.CreateLockRequest(target=target, reason=reason, ttl_seconds=seconds)
        )
    lock = lock_from_proto(reply.lock)
    if output == "json":
        print_json(_row(lock))
        return
    until = f"until {when(lock.expires)}" if lock.expires else "until removed"
    typer.echo(f"Locked {lock.target.describe()} {until} (lock {lock.name}).")
    typer.echo(f"Lift it with: mezctl lock rm {lock.name}")


def _row(lock: object) -> dict[str, object]:
    from proto.locks import Lock

    assert isinstance(lock, Lock)
    return {
        "name": lock.name,
        "target": lock.target.describe(),
        "reason": lock.reason,
        "created": lock.created,
        "created_by": lock.created_by,
        "expires": lock.expires or None,
    }


@app.command("ls")
@admin_command
def ls(
    ctx: typer.Context,
    output: FormatOpt = "text",
) -> None:
    """List the locks in force, automatic ones included."""
    from proto.locks import lock_from_proto
    from proto.v1 import auth_pb2 as pb

    with connect(ctx) as client:
        locks = client.rpc.ListLocks(pb.ListLocksRequest()).locks
    rows = [_row(lock_from_proto(lock)) for lock in locks]
    show_rows(
        rows, output, ["Name", "Target", "By", "Expires", "Reason"],
        lambda r: [r["name"], r["target"], r["created_by"],
                   when(r["expires"]) if r["expires"] else "never", r["reason"] or "-"],
    )  # fmt: skip


@app.command("rm")
@admin_command
def rm(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The lock's name (`mezctl lock ls`).")],
) -> None:
    """Remove a lock: what it refused is let in again."""
    from proto.v1 import auth_pb2 as pb

    with connect(ctx) as client:
        client.rpc.DeleteLock(pb.DeleteLockRequest(name=name))
    typer.echo(f"Lock {name} removed.")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="lock")
