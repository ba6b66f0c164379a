"""mezctl's administration commands: users, roles, tokens and the audit log.

Each command reaches the auth service as an administrator through cli.admin."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.admin import admin_command, connect, web_origin
from cli.common import command_group, print_json
from cli.render import FormatOpt, parse_labels, show_rows, split_list, when

users_app = command_group(help="Manage users.")
tokens_app = command_group(help="Manage join tokens.")
audit_app = command_group(help="Search the audit log.")
bots_app = command_group(help="Manage agent identities (machines: CI, Ansible).")


def _addr_and_pin(client: Any) -> tuple[str, str]:
    from proto.v1 import auth_pb2 as pb

    return str(client.addr), str(client.rpc.Ping(pb.PingRequest()).ca_pin)


@users_app.command("add")
@admin_command
def users_add(
    ctx: typer.Context,
    name: str,
    roles: Annotated[str, typer.Option("--roles", help="Comma list of roles.")],
    logins: Annotated[str | None, typer.Option("--logins", help="Comma list of OS logins.")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin.")
    ] = False,
) -> None:
    """Create a user and print a one-time invite (or set the password from stdin)."""
    from proto.v1 import auth_pb2 as pb

    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else ""
    if password_stdin and not password:
        from proto.errors import BadParameter

        raise BadParameter("--password-stdin was given but stdin had no password")
    with connect(ctx) as client:
        reply = client.rpc.CreateUser(
            pb.CreateUserRequest(
                name=name, roles=split_list(roles), logins=split_list(logins), password=password
            ),
        )
        if password:
            typer.echo(f"User {name!r} created.")
            return
        addr, pin = _addr_and_pin(client)
    _print_invite(ctx, name, reply.invite_token, reply.invite_expires, addr, pin)


def _print_invite(
    ctx: typer.Context, name: str, token: str, expires: float, addr: str, pin: str
) -> None:
    from proto.joinline import invite_url, set_password_command

    typer.echo(f"User {name!r} has an invite, valid until {when(expires)}:")
    typer.echo(f"  {token}")
    typer.echo("They set their password with:")
    typer.echo(f"  {set_password_command(token, addr, pin)}")
    origin = web_origin(ctx)
    if origin:
        typer.echo("or in a browser:")
        typer.echo(f"  {invite_url(origin, token)}")


@users_app.command("ls")
@admin_command
def users_ls(
    ctx: typer.Context,
    output: FormatOpt = "text",
) -> None:
    """List users."""
    from proto.v1 import auth_pb2 as pb

    with connect(ctx) as client:
        users = client.rpc.ListUsers(pb.ListUsersRequest()).users
    rows = [
        {
            "name": u.name,
            "roles": list(u.roles),
            "logins": list(u.logins),
            "has_password": u.has_password,
            "created": u.created,
        }
        for u in users
    ]
    show_rows(
        rows, output, ["User", "Roles", "Logins", "Password", "Created"],
        lambda r: [r["name"], ",".join(r["roles"]), ",".join(r["logins"]) or "-",
                   "set" if r["has_password"] else "invited", when(r["created"])],
    )  # fmt: skip


@users_app.command("rm")
@admin_command
def users_rm(
    ctx: typer.Context,
    name: str,
) -> None:
    """Delete a user; their sessions end at once."""
    from proto.v1 import auth_pb2 as pb

    with connect(ctx) as client:
        client.rpc.DeleteUser(pb.DeleteUserRequest(name=name))
    typer.echo(f"User {name!r} deleted: their sessions are ended, and an automatic lock")
    typer.echo("refuses their certificates on every node (see `mezctl lock ls`).")


@users_app.command("reset")
@admin_command
def users_reset(
    ctx: typer.Context,
    name: str,
) -> None:
    """Clear a user's password, end their sessions and print a new invite."""
    from proto.v1 import auth_pb2 as pb

    with connect(ctx) as client:
        reply = client.rpc.ResetUser(pb.ResetUserRequest(name=name))
        addr, pin = _addr_and_pin(client)
    _print_invite(ctx, name, reply.invite_token, reply.invite_expires, addr, pin)


_RULE_FIELD = re.compile(r",(?=(?:account|arn)=)")


def parse_rule(text: str) -> tuple[str, str]:
    """``account=ACCT[,arn=ARN]`` (either or both; an ARN may itself hold commas)."""
    from proto.errors import BadParameter

    fields: dict[str, str] = {}
    for part in _RULE_FIELD.split(text.strip()):
        key, sep, value = part.partition("=")
        if not sep or key not in ("account", "arn") or key in fields:
            raise BadParameter(
                f"invalid --allow {text[:80]!r}",
                hint="--allow account=123456789012[,arn=arn:aws:sts::123456789012:"
                "assumed-role/ROLE/*]",
            )
        fields[key] = value
    return fields.get("account", ""), fields.get("arn", "")


@tokens_app.command("add")
@admin_command
def tokens_add(
    ctx: typer.Context,
    type: Annotated[str, typer.Option("--type", help="node or proxy.")] = "node",
    ttl: Annotated[
        str | None,
        typer.Option("--ttl", help="Lifetime, e.g. 30m (default 30m; iam: until removed)."),
    ] = None,
    labels: Annotated[str | None, typer.Option("--labels", help="k=v,... for the node.")] = None,
    join_method: Annotated[
        str,
        typer.Option("--join-method", help="token (one-time secret) or iam (AWS identities)."),
    ] = "token",
    name: Annotated[
        str | None, typer.Option("--name", help="The iam token's name (e.g. aws-prod).")
    ] = None,
    allow: Annotated[
        list[str] | None,
        typer.Option(
            "--allow",
            help="An iam rule: account=ACCT[,arn=ARN or glob]; repeat for several.",
        ),
    ] = None,
    output: FormatOpt = "text",
) -> None:
    """Create a join token and print the command line that uses it: a one-time secret,
    or (--join-method iam) a named, reusable rule on AWS identities."""
    from proto.errors import BadParameter
    from proto.resources import parse_duration
    from proto.v1 import auth_pb2 as pb

    iam = join_method == "iam"
    if iam and not (name and allow):
        raise BadParameter(
            "an iam token needs --name and at least one --allow rule",
            hint="e.g. --name aws-prod --allow account=123456789012",
        )
    rules = [pb.AWSRule(aws_account=a, aws_arn=r) for a, r in map(parse_rule, allow or [])]
    default_ttl = "0s" if iam else "30m"
    request = pb.CreateTokenRequest(
        type=type,
        ttl_seconds=parse_duration(ttl or default_ttl, path="--ttl"),
        labels=parse_labels(labels),
        join_method=join_method,
        name=name or "",
        allow=rules,
    )
    with connect(ctx) as client:
        reply = client.rpc.CreateToken(request)
        addr, pin = _addr_and_pin(client)
    from proto.joinline import join_command

    line = join_command(type, reply.token, addr, pin, join_method=join_method)
    if output == "json":
        print_json(
            {"token": reply.token, "name": reply.name, "expires": reply.expires, "join": line}
        )
        return
    what = "proxy host" if type == "proxy" else "node"
    if iam:
        until = f"until {when(reply.expires)}" if reply.expires else "until removed"
        typer.echo(f"IAM join token {reply.name} ({type}), reusable {until}.")
        typer.echo(f"On a {what} whose AWS identity a rule admits, run:")
    else:
        typer.echo(f"Join token {reply.name} ({type}), valid until {when(reply.expires)}.")
        typer.echo(f"On the new {what}, run:")
    typer.echo(f"  {line}")


@tokens_app.command("ls")
@admin_command
def tokens_ls(
    ctx: typer.Context,
    output: FormatOpt = "text",
) -> None:
    """List join tokens (names only; secrets are never shown again) and IAM rules."""
    from proto.v1 import auth_pb2 as pb

    with connect(ctx) as client:
        tokens = client.rpc.ListTokens(pb.ListTokensRequest()).tokens
    rows = [
        {
            "name": t.name,
            "type": t.type,
            "join_method": t.join_method or "token",
            "expires": t.expires,
            "labels": dict(t.labels),
            "allow": [
                {k: v for k, v in (("account", r.aws_account), ("arn", r.aws_arn)) if v}
                for r in t.allow
            ],
        }
        for t in tokens
    ]
    show_rows(
        rows, output, ["Name", "Type", "Method", "Expires", "Labels", "Allow"],
        lambda r: [r["name"], r["type"], r["join_method"],
                   when(r["expires"]) if r["expires"] else "never",
                   ",".join(f"{k}={v}" for k, v in sorted(r["labels"].items())) or "-",
                   "; ".join(",".join(f"{k}={v}" for k, v in rule.items())
                             for rule in r["allow"]) or "-"],
    )  # fmt: skip


@tokens_app.command("rm")
@admin_command
def tokens_rm(
    ctx: typer.Context,
    name: str,
) -> None:
    """Delete a join token."""
    from proto.v1 import auth_pb2 as pb

    with connect(ctx) as client:
        client.rpc.DeleteToken(pb.DeleteTokenRequest(name=name))
    typer.echo(f"Token {name} deleted.")


@audit_app.command("events")
@admin_command
def audit_events(
    ctx: typer.Context,
    since: Annotated[str, typer.Option("--since", help="How far back, e.g. 1h.")] = "1h",
    type: Annotated[list[str] | None, typer.Option("--type", help="Event type.")] = None,
    user: Annotated[str, typer.Option("--user", help="Only this user.")] = "",
    limit: Annotated[int, typer.Option("--limit", help="At most this many events.")] = 1000,
    output: FormatOpt = "text",
) -> None:
    """Search the audit log, oldest first."""
    from proto.resources import parse_duration
    from proto.v1 import auth_pb2 as pb

    start = time.time() - parse_duration(since, path="--since")
    events: list[Any] = []
    page = ""
    with connect(ctx) as client:
        while len(events) < limit:
            reply = client.rpc.SearchAuditEvents(pb.SearchAuditEventsRequest(
                    start=start, types=type or [], user=user,
                    limit=min(500, limit - len(events)), page_token=page,
                ),
            )  # fmt: skip
            events.extend(reply.events)
            page = reply.next_page_token
            if not page:
                break
    rows = [
        {"id": e.id, "type": e.type, "code": e.code, "time": e.time, "user": e.user,
         "success": e.success, "session_id": e.session_id, "fields": json.loads(e.fields_json)}
        for e in events
    ]  # fmt: skip
    show_rows(
        rows, output, ["Time", "Type", "Code", "User", "Details"],
        lambda r: [when(r["time"]), r["type"], r["code"], r["user"] or "-",
                   " ".join(f"{k}={v}" for k, v in sorted(r["fields"].items()))],
    )  # fmt: skip


@bots_app.command("add")
@admin_command
def bots_add(
    ctx: typer.Context,
    name: str,
    roles: Annotated[str, typer.Option("--roles", help="Comma list of roles.")],
    logins: Annotated[str | None, typer.Option("--logins", help="Comma list of OS logins.")] = None,
    ttl: Annotated[str, typer.Option("--ttl", help="Certificate lifetime.")] = "1h",
    token_ttl: Annotated[str, typer.Option("--token-ttl", help="Bootstrap token lifetime.")] = "1h",  # noqa: S107 - a duration, not a secret
    dest: Annotated[str, typer.Option("--dest", help="Output dir in the printed line.")] = (
        "./mezite-identity"
    ),
    spiffe_role: Annotated[
        str,
        typer.Option(
            "--spiffe-role",
            help="Also an X.509 SVID for spiffe://TD/role/ROLE/NAME, renewed with the rest.",
        ),
    ] = "",
) -> None:
    """Create an agent identity and print the `mezd identity start` line that uses it."""
    from proto.resources import parse_duration
    from proto.v1 import auth_pb2 as pb

    with connect(ctx) as client:
        reply = client.rpc.CreateAgentIdentity(
            pb.CreateAgentIdentityRequest(
                name=name,
                roles=split_list(roles),
                logins=split_list(logins),
                ttl_seconds=parse_duration(ttl, path="--ttl"),
                token_ttl_seconds=parse_duration(token_ttl, path="--token-ttl"),
                spiffe_role=spiffe_role,
            ),
        )
        addr, pin = _addr_and_pin(client)
    from proto.joinline import auth_flags

    join = auth_flags(addr, pin)
    typer.echo(f"Agent identity {name!r} created; its bootstrap token is valid until "
               f"{when(reply.token_expires)}. On the machine, run:")  # fmt: skip
    typer.echo(f"  mezd identity start --token {reply.bootstrap_token} {join} --dest {dest}")


@bots_app.command("ls")
@admin_command
def bots_ls(
    ctx: typer.Context,
    output: FormatOpt = "text",
) -> None:
    """List agent identities: roles, generation, last renewal, lock state."""
    from proto.v1 import auth_pb2 as pb

    with connect(ctx) as client:
        found = client.rpc.ListAgentIdentities(pb.ListAgentIdentitiesRequest()).identities
    rows = [{"name": i.name, "roles": list(i.roles), "logins": list(i.logins),
             "generation": i.generation, "spiffe_role": i.spiffe_role,
             "last_renewed": i.last_renewed, "locked": i.locked, "ttl_seconds": i.ttl_seconds}
            for i in found]  # fmt: skip
    show_rows(
        rows, output, ["Name", "Roles", "Generation", "Last renewal", "Locked"],
        lambda r: [r["name"], ",".join(r["roles"]), r["generation"], when(r["last_renewed"]),
                   "LOCKED" if r["locked"] else "no"],
    )  # fmt: skip


def _bot_action(ctx: typer.Context, name: str, method: str, request: Any, done: str) -> None:
    with connect(ctx) as client:
        getattr(client.rpc, method)(request)
    typer.echo(f"Agent identity {name!r} {done}.")


@bots_app.command("rm")
@admin_command
def bots_rm(
    ctx: typer.Context,
    name: str,
) -> None:
    """Delete an agent identity; it is refused from then on."""
    from proto.v1 import auth_pb2 as pb

    _bot_action(ctx, name, "DeleteAgentIdentity", pb.DeleteAgentIdentityRequest(name=name),
                "deleted")  # fmt: skip


@bots_app.command("lock")
@admin_command
def bots_lock(
    ctx: typer.Context,
    name: str,
) -> None:
    """Lock an agent identity: every call it makes is refused."""
    from proto.v1 import auth_pb2 as pb

    request = pb.SetAgentIdentityLockRequest(name=name, locked=True)
    _bot_action(ctx, name, "SetAgentIdentityLock", request, "locked")


@bots_app.command("unlock")
@admin_command
def bots_unlock(
    ctx: typer.Context,
    name: str,
) -> None:
    """Unlock an agent identity (after investigating why it was locked)."""
    from proto.v1 import auth_pb2 as pb

    request = pb.SetAgentIdentityLockRequest(name=name, locked=False)
    _bot_action(ctx, name, "SetAgentIdentityLock", request, "unlocked")


@admin_command
def export(
    ctx: typer.Context,
    type: Annotated[str, typer.Option("--type", help="user-ca, host-ca, tls-ca or krl.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write to this file (krl: atomically).")
    ] = None,
) -> None:
    """Print a CA's public half: user-ca for sshd's TrustedUserCAKeys, host-ca as a
    known_hosts @cert-authority line, tls-ca as PEM; or krl: an OpenSSH revocation list
    of every certificate still valid for a locked target, for sshd's RevokedKeys."""
    from proto.errors import BadParameter
    from proto.v1 import auth_pb2 as pb

    kinds = {"user-ca": "user_ssh", "host-ca": "host_ssh", "tls-ca": "host_x509"}
    if type == "krl":
        _export_krl(ctx, out)
        return
    if type not in kinds:
        raise BadParameter(f"unknown --type {type!r}; use user-ca, host-ca, tls-ca or krl")
    if out is not None:
        raise BadParameter("--out is for --type krl; redirect the output instead")
    with connect(ctx) as client:
        reply = client.rpc.GetClusterCAs(pb.GetClusterCAsRequest())
    for ca in reply.authorities:
        if ca.kind == kinds[type]:
            line = ca.public_data.strip()
            typer.echo(f"@cert-authority * {line}" if type == "host-ca" else line)


def _export_krl(ctx: typer.Context, out: Path | None) -> None:
    from proto.errors import BadParameter
    from proto.files import write_private
    from proto.v1 import auth_pb2 as pb

    if out is None and sys.stdout.isatty():
        raise BadParameter("a KRL is binary: give --out FILE or redirect the output")
    with connect(ctx) as client:
        reply = client.rpc.ExportKRL(pb.ExportKRLRequest())
    if out is None:
        sys.stdout.buffer.write(reply.krl)
        sys.stdout.flush()
    else:
        try:
            write_private(out, reply.krl, mode=0o644)  # sshd reads it; it holds no secret
        except OSError as exc:
            raise BadParameter(f"cannot write {out}: {exc.strerror or exc}") from None
    typer.echo(f"KRL revokes {reply.revoked} certificate(s).", err=True)


recordings_app = command_group(help="Session recordings (asciicast v2).")


@recordings_app.command("export")
@admin_command
def recordings_export(
    ctx: typer.Context,
    session_id: Annotated[str, typer.Argument(help="The session id.")],
) -> None:
    """Write a session's recording to stdout: `... > s.cast`, then `asciinema play s.cast`."""
    from proto.v1 import auth_pb2 as pb

    request = pb.GetSessionRecordingRequest(session_id=session_id)
    with connect(ctx) as client:
        for part in client.rpc.GetSessionRecording(request):
            sys.stdout.buffer.write(part.data)
    sys.stdout.buffer.flush()


def register(app: typer.Typer) -> None:
    app.command("export")(export)
    app.add_typer(users_app, name="users")
    app.add_typer(bots_app, name="agent-identities")
    app.add_typer(tokens_app, name="tokens")
    app.add_typer(audit_app, name="audit")
    app.add_typer(recordings_app, name="recordings")

    @app.command("create")
    @admin_command
    def create(
        ctx: typer.Context,
        file: Annotated[Path, typer.Option("-f", "--file", help="YAML or TOML resource file.")],
    ) -> None:
        """Create or update the resources (roles) in a file."""
        from proto.resources import load_role_resources
        from proto.v1 import auth_pb2 as pb

        roles = load_role_resources(file)
        with connect(ctx) as client:
            for role in roles:
                reply = client.rpc.UpsertRole(pb.UpsertRoleRequest(role=role))
                typer.echo(f"role {role.name!r} {'created' if reply.created else 'updated'}")

    @app.command("get")
    @admin_command
    def get(
        ctx: typer.Context,
        kind: Annotated[str, typer.Argument(help="Resource kind: roles.")],
        name: Annotated[str, typer.Argument(help="One resource by name.")] = "",
        output: Annotated[str, typer.Option("--format", help="yaml or json.")] = "yaml",
    ) -> None:
        """Show resources (roles) as YAML or JSON."""
        from proto.errors import BadParameter
        from proto.resources import role_to_resource
        from proto.v1 import auth_pb2 as pb

        if kind not in ("roles", "role"):
            raise BadParameter(f"unknown resource kind {kind!r}; try: roles")
        with connect(ctx) as client:
            roles = client.rpc.ListRoles(pb.ListRolesRequest(name=name)).roles
        docs = [role_to_resource(role) for role in roles]
        if output == "json":
            print_json(docs)
            return
        import yaml

        typer.echo(yaml.safe_dump_all(docs, sort_keys=False).rstrip())

    @app.command("rm")
    @admin_command
    def rm(
        ctx: typer.Context,
        ref: Annotated[str, typer.Argument(help="KIND/NAME, e.g. role/dev.")],
    ) -> None:
        """Delete a resource, e.g. `mezctl rm role/dev`."""
        from proto.errors import BadParameter
        from proto.v1 import auth_pb2 as pb

        kind, sep, name = ref.partition("/")
        if not sep or kind != "role" or not name:
            raise BadParameter(f"unknown resource {ref!r}; use role/NAME")
        with connect(ctx) as client:
            client.rpc.DeleteRole(pb.DeleteRoleRequest(name=name))
        typer.echo(f"role {name!r} deleted")
