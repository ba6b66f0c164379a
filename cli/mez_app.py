"""`mez`'s commands (typer): log in, list nodes, ssh and scp. The entry point is
cli/mez.py, which runs `mez ssh` without this module."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.common import DebugOpt, command_group, print_json, run, version_callback

app = command_group(
    help="Mezite user client: log in, list nodes, ssh and scp.",
)

if TYPE_CHECKING:
    from proto.profile import Profile

FormatOpt = Annotated[str, typer.Option("--format", help="Output format: table or json.")]


@app.callback()
def main_options(
    debug: DebugOpt = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=version_callback("mez"), is_eager=True, help="Show the version."
        ),
    ] = False,
) -> None:
    """Mezite user client: log in, list nodes, ssh and scp."""


def read_password(from_stdin: bool, *, confirm: bool = False) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=confirm))


def _confirm_pin(addr: str) -> Callable[[str], bool] | None:
    """A trust-on-first-use prompt, only where a person can answer it."""
    if not sys.stdin.isatty():
        return None

    def ask(pin: str) -> bool:
        typer.echo(f"The cluster at {addr} presents the CA with pin:\n  {pin}", err=True)
        typer.echo("Compare it with `mezctl status` on the auth server.", err=True)
        return bool(typer.confirm("Trust this cluster?", default=False, err=True))

    return ask


@app.command()
def login(
    auth_given: Annotated[
        list[str] | None,
        typer.Option(
            "--auth",
            help="Auth service HOST:PORT (default: last used); several as A,B or repeated.",
        ),
    ] = None,
    proxy_given: Annotated[
        list[str] | None,
        typer.Option(
            "--proxy",
            help="Proxy HOST:PORT (web); SSH then goes through it. Several as A,B or repeated.",
        ),
    ] = None,
    user: Annotated[str | None, typer.Option("--user", help="User name.")] = None,
    ttl: Annotated[str, typer.Option("--ttl", help="Certificate lifetime, e.g. 8h.")] = "0",
    ca_pin: Annotated[str | None, typer.Option("--ca-pin", help="sha256:... to trust.")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin.")
    ] = False,
    spiffe: Annotated[
        bool,
        typer.Option("--spiffe", help="Log in as a workload, with its SPIFFE X.509 SVID."),
    ] = False,
    svid: Annotated[Path | None, typer.Option("--svid", help="--spiffe: the SVID (PEM).")] = None,
    svid_key: Annotated[
        Path | None, typer.Option("--svid-key", help="--spiffe: the SVID's key (PEM).")
    ] = None,
    workload_api: Annotated[
        str | None,
        typer.Option(
            "--workload-api",
            help="--spiffe: the Workload API, unix:///PATH (default: $SPIFFE_ENDPOINT_SOCKET).",
        ),
    ] = None,
    keyring: Annotated[
        str | None,
        typer.Option(
            "--keyring",
            envvar="MEZITE_KEYRING",
            help="Where the session lives: os (Secret Service, Keychain, Credential "
            "Locker) or kernel (Linux user keyring, for headless machines). Default: last "
            "used, else os.",
        ),
    ] = None,
) -> None:
    """Log in: a session in the OS keyring and a short-lived certificate in ~/.mezite (or,
    with --spiffe, a certificate for the SVID's role and no session)."""
    import getpass

    from cli import mez_client
    from cli.common import joined
    from proto.errors import BadParameter
    from proto.profile import load_profile, session_store
    from proto.resources import parse_duration

    auth, proxy = joined(auth_given), joined(proxy_given)
    previous = None
    try:
        previous = load_profile()
    except Exception:
        previous = None
    if proxy and auth:
        raise BadParameter("give --proxy or --auth, not both")
    if not spiffe and (svid or svid_key or workload_api):
        raise BadParameter("--svid, --svid-key and --workload-api are for --spiffe")
    if spiffe and keyring:
        raise BadParameter("--keyring keeps a session, and a SPIFFE login has none")
    web = proxy or (previous.web_addr if previous and not auth else "")
    if spiffe and not web:
        raise BadParameter(
            "a SPIFFE login goes through a proxy", hint="pass --proxy HOST:3080 and --ca-pin"
        )
    if web:
        # Everything through the proxy's HTTPS API: users need not reach auth at all.
        from proto.web_client import ping

        doc = ping(web)
        known = previous.proxy_addr if previous and previous.web_addr == web else ""
        addr, proxy_ssh = doc.auth_addr, mez_client.proxy_ssh_addrs(web, doc, known)
        if previous and previous.web_addr == web and not ca_pin:
            ca_pem, pin = previous.ca_path.read_text(), previous.ca_pin  # trusted before
        else:
            confirm = None if password_stdin or spiffe else _confirm_pin(web)
            ca_pem, pin = mez_client.trust_bundle(doc.ca_pem, ca_pin, confirm)
        if spiffe:
            from cli import mez_spiffe

            profile, reply = mez_spiffe.login(
                web_addr=web, auth_addr=addr, proxy_addr=proxy_ssh, ca_pem=ca_pem, pin=pin,
                svid_file=svid, key_file=svid_key, socket=workload_api,
            )  # fmt: skip
            typer.echo(f"Logged in to {profile.cluster} as {reply.spiffe_id}.")
            _print_status(profile)
            return
    else:
        addr = auth or (previous.auth_addr if previous else "")
        proxy_ssh = ""
        if not addr:
            raise BadParameter("which cluster?", hint="pass --proxy HOST:3080 or --auth HOST:3025")
        if previous and previous.auth_addr == addr and not ca_pin:
            ca_pem, pin = previous.ca_path.read_text(), previous.ca_pin  # trusted before
        else:
            confirm = None if password_stdin else _confirm_pin(addr)
            ca_pem, pin = mez_client.trust_cluster(addr, ca_pin, confirm)
    name = user or (previous.user if previous else None) or getpass.getuser()
    store = keyring or (previous.keyring if previous else "os")
    session_store(store)  # no usable keyring: say so before the password is asked or sent
    password = read_password(password_stdin)
    profile = mez_client.login(
        addr=addr,
        user=name,
        password=password,
        ttl=parse_duration(ttl, path="--ttl"),
        ca_pem=ca_pem,
        pin=pin,
        proxy_addr=proxy_ssh,
        web_addr=web,
        keyring=store,
    )
    typer.echo(f"Logged in to {profile.cluster} as {profile.user}.")
    _print_status(profile)


def _print_status(profile: Profile) -> None:
    from cli.mez_client import current_user
    from cli.render import when
    from proto.profile import cert_valid_before, describe_keyring
    from proto.sshconfig import certificate_logins

    if profile.is_spiffe:
        from cli.mez_spiffe import current_svid

        svid = current_svid(profile)
        source = profile.spiffe_socket or profile.spiffe_svid
        typer.echo(f"  Cluster:     {profile.cluster} (via proxy {profile.web_addr})")
        typer.echo(f"  SPIFFE ID:   {svid.spiffe_id} (from {source})")
        typer.echo(f"  SVID:        valid until {when(svid.not_after)}")
        logins = certificate_logins(profile.cert_path.read_bytes())
        typer.echo(f"  Logins:      {', '.join(logins) or '-'}")
        typer.echo(f"  Certificate: valid until {when(cert_valid_before(profile))}")
        typer.echo("  Keyring:     none (a SPIFFE login keeps no session)")
        return
    me = current_user(profile)
    via = f"via proxy {profile.web_addr}" if profile.web_addr else profile.auth_addr
    typer.echo(f"  Cluster:     {profile.cluster} ({via})")
    typer.echo(f"  User:        {me.username}")
    typer.echo(f"  Roles:       {', '.join(me.roles) or '-'}")
    typer.echo(f"  Logins:      {', '.join(me.logins) or '-'}")
    typer.echo(f"  Certificate: valid until {when(cert_valid_before(profile))}")
    typer.echo(f"  Session:     valid until {when(me.session_expires)}")
    typer.echo(f"  Keyring:     {describe_keyring(profile)}")


@app.command()
def status() -> None:
    """Show the cluster, user, roles, logins and certificate validity."""
    from proto.profile import load_profile

    _print_status(load_profile())


@app.command()
def logout() -> None:
    """End the session on the server and remove local keys and certificates."""
    from cli.mez_client import logout as do_logout
    from proto.profile import load_profile, remove_profile

    profile = load_profile()
    do_logout(profile)
    remove_profile(profile)
    typer.echo(f"Logged out of {profile.cluster}.")


@app.command("ls")
def ls(
    selectors: Annotated[list[str] | None, typer.Argument(help="k=v label filters.")] = None,
    output: FormatOpt = "table",
) -> None:
    """List the nodes your roles let you reach."""
    from cli.mez_client import list_nodes, parse_selector
    from cli.render import table
    from proto.errors import BadParameter
    from proto.profile import load_profile

    labels: dict[str, str] = {}
    for selector in selectors or []:
        parsed = parse_selector(selector)
        if parsed is None:
            raise BadParameter(f"invalid label filter {selector!r}; use key=value")
        labels.update(parsed)
    nodes = list_nodes(load_profile(), labels)
    if output == "json":
        print_json([{"id": n.id, "name": n.name, "addr": n.addr, "labels": dict(n.labels)}
                    for n in nodes])  # fmt: skip
        return
    table(
        ["Node", "Address", "Labels", "ID"],
        [[n.name, n.addr, ",".join(f"{k}={v}" for k, v in sorted(n.labels.items())), n.id]
         for n in nodes],
    )  # fmt: skip


@app.command(
    context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True},
)
def ssh(
    args: Annotated[
        list[str] | None,
        typer.Argument(
            help="[OPTIONS] [LOGIN@]NODE [COMMAND...], read as OpenSSH's ssh reads them "
            "(so rsync -e 'mez ssh', GIT_SSH_COMMAND and Ansible work): -l, -o, -v, -q, -4/-6, "
            "-t/-T, -L/-R/-D, -N, -A, -C and the rest go to ssh; -p and -i are ignored (nodes "
            "are found by name, the Mezite certificate is the identity); -F and -J are "
            "refused. NODE is a node name, id, or k=v selector (runs everywhere it matches).",
            metavar="ARGS",
        ),
    ] = None,
) -> None:
    """SSH to a node (OpenSSH does the session); exit code is the remote command's."""
    from cli.mez_ssh import ssh as run_ssh

    raise typer.Exit(run_ssh(args or []))


@app.command()
def scp(
    paths: Annotated[list[str], typer.Argument(help="SRC... DST; remote as [login@]node:path.")],
    recursive: Annotated[bool, typer.Option("-r", help="Copy directories.")] = False,
    preserve: Annotated[
        bool, typer.Option("-p", help="Keep modification times and modes.")
    ] = False,
    legacy: Annotated[
        bool, typer.Option("-O", help="The legacy scp protocol instead of SFTP.")
    ] = False,
) -> None:
    """Copy files to and from nodes with OpenSSH's scp (-r, -p, -O as scp takes them)."""
    from cli import mez_client
    from proto.errors import BadParameter
    from proto.profile import load_profile

    if len(paths) < 2:
        raise BadParameter("give at least one source and a destination")
    profile = load_profile()
    mez_client.ensure_certs(profile)
    flags = [flag for flag, on in (("-r", recursive), ("-p", preserve), ("-O", legacy)) if on]
    argv = [mez_client.ssh_binary("scp"), *flags]
    remote_nodes = []
    rewritten = []
    for path in paths:
        spec, sep, rest = path.partition(":")
        if not sep or "/" in spec:
            rewritten.append(path)
            continue
        login_name, host = mez_client.split_login(spec, mez_client.default_login(profile))
        (node,) = mez_client.resolve_targets(profile, host)
        remote_nodes.append(node)
        rewritten.append(f"{login_name}@{node.name}:{rest}")
    if len({n.id for n in remote_nodes}) != 1:
        raise BadParameter("scp copies between this machine and one node")
    argv += mez_client.ssh_options(profile, remote_nodes[0]) + rewritten
    sys.stdout.flush()
    os.execv(argv[0], argv)  # noqa: S606


@app.command()
def config() -> None:
    """Print an OpenSSH config block so plain `ssh NODE.CLUSTER` and Ansible work."""
    from cli.sshconfig import config_block
    from proto.profile import load_profile

    typer.echo(config_block(load_profile(), Path(sys.argv[0]).resolve()))


@app.command("proxy-connect", hidden=True)
def proxy_connect(
    host: Annotated[str, typer.Argument(help="NODE or NODE.CLUSTER.")],
    port: Annotated[int, typer.Argument(help="Ignored: the node's own port is used.")] = 0,
) -> None:
    """ProxyCommand helper for `mez config`: connect stdio to a node's SSH port."""
    from cli import mez_client
    from cli.sshconfig import pipe_stdio
    from proto.profile import load_profile

    profile = load_profile()
    name = host.removesuffix(f".{profile.cluster}")
    node = mez_client.find_node(profile, name)
    mez_client.ensure_certs(profile)
    pipe_stdio(node.addr)


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
        reply = client.rpc.AcceptInvite(pb.AcceptInviteRequest(token=token, password=password))
    typer.echo(f"Password set for {reply.username}. Log in with `mez login`.")


from cli import mez_recordings  # noqa: E402 - registers its commands on app

mez_recordings.register(app)


def main() -> None:
    from cli.mez import HINTS

    run(app, "mez", HINTS)
