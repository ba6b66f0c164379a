"""`mezctl spiffe issue|bundle|trust`: the cluster's SPIFFE CA and the external trust
domains whose SVIDs `mez login --spiffe` accepts.

SVIDs name ``spiffe://TRUST-DOMAIN/role/ROLE[/WORKLOAD]``; the role decides the SSH
certificate's logins and node access. An external domain (a SPIRE server's) is trusted
for the roles named when it is added, and never for any other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.admin import admin_command, connect
from cli.common import command_group, print_json
from cli.render import FormatOpt, show_rows, split_list, when

app = command_group(help="SPIFFE: issue SVIDs, show the bundle, trust other domains.")
trust_app = command_group(help="Trusted external SPIFFE trust domains.")
app.add_typer(trust_app, name="trust")

SVID_FILE, SVID_KEY_FILE, BUNDLE_FILE = "svid.pem", "svid_key.pem", "bundle.pem"


@app.command("issue")
@admin_command
def issue(
    ctx: typer.Context,
    role: Annotated[str, typer.Option("--role", help="The role the SVID names.")],
    out: Annotated[
        Path, typer.Option("--out", help="Directory for svid.pem, svid_key.pem, bundle.pem.")
    ],
    workload: Annotated[
        str, typer.Option("--workload", help="A workload name, the ID's last segment.")
    ] = "",
    ttl: Annotated[str, typer.Option("--ttl", help="Lifetime, e.g. 1h (at most 30d).")] = "1h",
    output: FormatOpt = "text",
) -> None:
    """Issue an X.509 SVID for a role: the key is made here and written 0600 beside it."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from proto.files import ensure_private_dir, write_private
    from proto.resources import parse_duration
    from proto.v1 import auth_pb2 as pb

    seconds = parse_duration(ttl, path="--ttl")
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with connect(ctx) as client:
        reply = client.rpc.IssueSVID(pb.IssueSVIDRequest(
            role=role, workload=workload, ttl_seconds=seconds, public_key_pem=public.decode()
        ))  # fmt: skip
    ensure_private_dir(out)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())  # fmt: skip
    write_private(out / SVID_KEY_FILE, private)
    write_private(out / SVID_FILE, reply.svid_chain_pem)
    write_private(out / BUNDLE_FILE, reply.bundle_pem)
    if output == "json":
        print_json({"spiffe_id": reply.spiffe_id, "expires": reply.expires, "dir": str(out)})
        return
    typer.echo(f"SVID {reply.spiffe_id}, valid until {when(reply.expires)}, in {out}.")
    typer.echo(f"Log in with it: mez login --spiffe --svid {out / SVID_FILE} "
               f"--svid-key {out / SVID_KEY_FILE} --proxy PROXY:3080 --ca-pin ...")  # fmt: skip


@app.command("bundle")
@admin_command
def bundle(
    ctx: typer.Context,
    output: Annotated[
        str, typer.Option("--format", help="pem, or jwks (the SPIFFE bundle format).")
    ] = "pem",
) -> None:
    """Print the cluster's SPIFFE trust bundle (for SPIRE federation, or workloads)."""
    from proto.errors import BadParameter
    from proto.v1 import auth_pb2 as pb

    if output not in ("pem", "jwks"):
        raise BadParameter(f"unknown --format {output[:32]!r}; use pem or jwks")
    with connect(ctx) as client:
        reply = client.rpc.GetSPIFFEBundle(pb.GetSPIFFEBundleRequest())
    typer.echo(reply.bundle_pem.rstrip("\n") if output == "pem" else reply.bundle_jwks)


def _read_bundle(path: Path | None) -> str:
    from proto.errors import BadParameter

    if path is None:
        return ""
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise BadParameter(
            f"cannot read the bundle {path}: {getattr(exc, 'strerror', exc)}"
        ) from None


def _put(ctx: typer.Context, trust_domain: str, bundle: Path | None, roles: str | None,
         *, create: bool) -> None:  # fmt: skip
    from proto.v1 import auth_pb2 as pb

    trust = pb.SPIFFETrust(
        trust_domain=trust_domain, bundle_pem=_read_bundle(bundle), roles=split_list(roles)
    )
    with connect(ctx) as client:
        stored = client.rpc.PutSPIFFETrust(pb.PutSPIFFETrustRequest(trust=trust, create=create))
    verb = "Trusting" if create else "Updated"
    typer.echo(f"{verb} {stored.trust.trust_domain} for roles {', '.join(stored.trust.roles)}.")


DomainOpt = Annotated[str, typer.Option("--trust-domain", help="e.g. prod.example.org.")]


@trust_app.command("add")
@admin_command
def trust_add(
    ctx: typer.Context,
    trust_domain: DomainOpt,
    bundle: Annotated[Path, typer.Option("--bundle", help="Its CA certificates: PEM or JWKS.")],
    roles: Annotated[str, typer.Option("--roles", help="Roles its SVIDs may claim: r1,r2.")],
) -> None:
    """Trust a SPIFFE trust domain's SVIDs for the roles named (never any other)."""
    _put(ctx, trust_domain, bundle, roles, create=True)


@trust_app.command("update")
@admin_command
def trust_update(
    ctx: typer.Context,
    trust_domain: DomainOpt,
    bundle: Annotated[Path | None, typer.Option("--bundle", help="A new bundle.")] = None,
    roles: Annotated[str | None, typer.Option("--roles", help="New roles: r1,r2.")] = None,
) -> None:
    """Change a trusted domain's bundle (a rotated root) or its roles."""
    _put(ctx, trust_domain, bundle, roles, create=False)


@trust_app.command("ls")
@admin_command
def trust_ls(ctx: typer.Context, output: FormatOpt = "text") -> None:
    """List the trusted external trust domains."""
    from proto.v1 import auth_pb2 as pb

    with connect(ctx) as client:
        trusts = client.rpc.ListSPIFFETrust(pb.ListSPIFFETrustRequest()).trusts
    rows = [
        {"trust_domain": t.trust_domain, "roles": list(t.roles), "updated": t.updated,
         "authorities": t.bundle_pem.count("BEGIN CERTIFICATE")}
        for t in trusts
    ]  # fmt: skip
    show_rows(rows, output, ["Trust domain", "Roles", "Authorities", "Updated"],
              lambda r: [r["trust_domain"], ",".join(r["roles"]), r["authorities"],
                         when(r["updated"])])  # fmt: skip


@trust_app.command("rm")
@admin_command
def trust_rm(ctx: typer.Context, trust_domain: str) -> None:
    """Stop trusting a trust domain: its SVIDs are refused from now on."""
    from proto.v1 import auth_pb2 as pb

    with connect(ctx) as client:
        client.rpc.DeleteSPIFFETrust(pb.DeleteSPIFFETrustRequest(trust_domain=trust_domain))
    typer.echo(f"No longer trusting {trust_domain}.")


workloads_app = command_group(
    help="Workload rules: which processes on which nodes get SVIDs from mezd's Workload API.",
)
app.add_typer(workloads_app, name="workloads")


@workloads_app.command("add")
@admin_command
def workloads_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The rule's name, the SVID's last segment.")],
    role: Annotated[str, typer.Option("--role", help="The role its SVIDs name.")],
    node_labels: Annotated[
        str | None, typer.Option("--node-labels", help="k=v,... the nodes must carry.")
    ] = None,
    unix_uid: Annotated[int | None, typer.Option("--unix-uid", help="The process's uid.")] = None,
    unix_user: Annotated[
        str, typer.Option("--unix-user", help="The process's user (resolved on the node).")
    ] = "",
    unix_gid: Annotated[int | None, typer.Option("--unix-gid", help="The process's gid.")] = None,
    exe: Annotated[str, typer.Option("--exe", help="The process's executable (absolute).")] = "",
    ttl: Annotated[str, typer.Option("--ttl", help="SVID lifetime, 10s to 24h.")] = "1h",
) -> None:
    """Let processes that match (as each node's kernel attests) hold an SVID for a role."""
    from cli.render import parse_labels
    from proto.resources import parse_duration
    from proto.v1 import auth_pb2 as pb

    rule = pb.WorkloadRule(
        name=name, role=role, node_labels=parse_labels(node_labels), unix_user=unix_user,
        exe=exe, ttl_seconds=parse_duration(ttl, path="--ttl"),
    )  # fmt: skip
    if unix_uid is not None:
        rule.unix_uid = unix_uid
    if unix_gid is not None:
        rule.unix_gid = unix_gid
    with connect(ctx) as client:
        stored = client.rpc.PutWorkloadRule(pb.PutWorkloadRuleRequest(rule=rule)).rule
        domain = client.rpc.GetSPIFFEBundle(pb.GetSPIFFEBundleRequest()).trust_domain
    typer.echo(f"Workload rule {stored.name}: matching processes get "
               f"spiffe://{domain}/role/{stored.role}/{stored.name}.")  # fmt: skip


@workloads_app.command("ls")
@admin_command
def workloads_ls(ctx: typer.Context, output: FormatOpt = "text") -> None:
    """List the workload rules."""
    from proto.v1 import auth_pb2 as pb

    with connect(ctx) as client:
        rules = client.rpc.ListWorkloadRules(pb.ListWorkloadRulesRequest()).rules
    rows = [
        {"name": r.name, "role": r.role, "node_labels": dict(r.node_labels),
         "unix_uid": r.unix_uid if r.HasField("unix_uid") else None,
         "unix_gid": r.unix_gid if r.HasField("unix_gid") else None,
         "unix_user": r.unix_user, "exe": r.exe, "ttl_seconds": r.ttl_seconds}
        for r in rules
    ]  # fmt: skip

    def who(r: dict[str, object]) -> str:
        parts = [f"{k}={r[k]}" for k in ("unix_uid", "unix_user", "unix_gid", "exe")
                 if r[k] not in (None, "")]  # fmt: skip
        return " ".join(parts)

    show_rows(rows, output, ["Name", "Role", "Nodes", "Process", "TTL"],
              lambda r: [r["name"], r["role"],
                         ",".join(f"{k}={v}" for k, v in sorted(r["node_labels"].items())) or "*",
                         who(r), f"{r['ttl_seconds']}s"])  # fmt: skip


@workloads_app.command("rm")
@admin_command
def workloads_rm(ctx: typer.Context, name: str) -> None:
    """Remove a workload rule: its SVIDs are not renewed."""
    from proto.v1 import auth_pb2 as pb

    with connect(ctx) as client:
        client.rpc.DeleteWorkloadRule(pb.DeleteWorkloadRuleRequest(name=name))
    typer.echo(f"Workload rule {name} removed; its SVIDs are not renewed.")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="spiffe")
