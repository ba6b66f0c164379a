"""What `mez` does, without the terminal: trust, login, certificates, node lookup and
the OpenSSH command lines that carry `mez ssh`, `mez scp` and `mez config`.

`mez ssh` runs OpenSSH's own `ssh` with Mezite's key, certificate and known_hosts (see
docs/rfd/0002-mez-ssh-uses-openssh.md): the terminal, PTY, window changes, escapes,
forwarding and exit codes are exactly OpenSSH's."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from proto.addr import HostPort
from proto.cluster_api import connect
from proto.errors import BadParameter, ConnectionProblem, NotAuthenticated, NotFound
from proto.files import write_private
from proto.profile import (
    Profile,
    cert_is_fresh,
    forget_session,
    store_session,
)
from proto.sshconfig import (
    DEFAULTS,
    HostBlock,
    SSHIdentity,
    certificate_logins,
    command_line,
    host_block,
    render,
)

if TYPE_CHECKING:
    from proto.cluster_api import ClusterAPI
    from proto.v1 import auth_pb2 as pb


def _trust(
    fetch: Callable[[], str], where: str, pin: str | None, confirm: Callable[[str], bool] | None
) -> tuple[str, str]:
    """The CA in the bundle ``fetch`` gets: the one ``pin`` selects, or the one a person
    confirms by its pin (trust on first use). Neither: refused before anything is
    fetched, and so before anything secret is sent."""
    from proto.trust import parse_pin, select_pinned_ca, spki_pin

    if not pin and confirm is None:
        raise NotAuthenticated(
            f"refusing to trust {where} without a CA pin",
            hint="pass --ca-pin sha256:... (your admin has it from `mezctl status`)",
        )
    bundle = fetch()
    if pin:
        return select_pinned_ca(bundle, parse_pin(pin)), parse_pin(pin)
    seen_pin = spki_pin(bundle)
    assert confirm is not None
    if not confirm(seen_pin):
        raise NotAuthenticated("the cluster's CA was not trusted; nothing was sent")
    return bundle, seen_pin


def trust_cluster(
    addr: str, pin: str | None, confirm: Callable[[str], bool] | None
) -> tuple[str, str]:
    """The cluster CA that auth at ``addr`` offers, checked by pin or by a person."""
    from proto.bootstrap import fetch_unverified_ca

    return _trust(lambda: fetch_unverified_ca(addr)[0], addr, pin, confirm)


def trust_bundle(
    bundle: str, pin: str | None, confirm: Callable[[str], bool] | None
) -> tuple[str, str]:
    """The CA in ``bundle`` (as a proxy's ping offers it), checked by pin or by a person."""

    def offered() -> str:
        if not bundle:
            raise NotAuthenticated("the proxy offered no CA to check against the pin")
        return bundle

    return _trust(offered, "the proxy", pin, confirm)


def _write_certs(profile: Profile, issued: pb.IssueUserCertsResponse, private_pem: str) -> None:
    write_private(profile.key_path, private_pem)
    write_private(profile.cert_path, issued.ssh_certificate + "\n", mode=0o644)
    lines = "".join(f"@cert-authority * {key}\n" for key in issued.host_ca_keys)
    write_private(profile.known_hosts_path, lines, mode=0o644)
    write_private(profile.ca_path, issued.tls_ca_pem, mode=0o644)


def issue_certs(profile: Profile, session_id: str | None = None, ttl: int = 0) -> None:
    """A fresh key pair and certificate for the session."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    try:
        api = connect(profile, session_id)
        try:
            issued = api.issue_user_certs(public, ttl)
        finally:
            api.close()
    except NotAuthenticated as err:
        raise NotAuthenticated(
            "your session has ended", hint=f"run `mez login` ({err.message})"
        ) from err
    _write_certs(profile, issued, private_pem)
    if profile.proxy_addr:
        proxy_ssh_config(profile)


def login(
    *,
    addr: str,
    user: str,
    password: str,
    ttl: int,
    ca_pem: str,
    pin: str,
    proxy_addr: str = "",
    web_addr: str = "",
    keyring: str = "os",
) -> Profile:
    """Log in through the proxy's REST API when ``web_addr`` is given, else over gRPC to
    auth at ``addr``."""
    from proto.cluster_api import GrpcClusterAPI, WebClusterAPI

    api: ClusterAPI = (
        WebClusterAPI(web_addr, ca_pem) if web_addr else GrpcClusterAPI(addr, ca_pem.encode())
    )
    try:
        cluster = api.ping().cluster_name
        session_id = api.login(user, password).session_id
    finally:
        api.close()
    profile = Profile(
        cluster=cluster,
        user=user,
        auth_addr=addr,
        ca_pin=pin,
        proxy_addr=proxy_addr,
        web_addr=web_addr,
        keyring=keyring,
    )
    profile.save()
    write_private(profile.ca_path, ca_pem, mode=0o644)
    try:
        store_session(profile, session_id)
    except NotAuthenticated:
        # A session no keyring keeps is ended now, not left live until it expires.
        end = (
            WebClusterAPI(web_addr, ca_pem, session_id)
            if web_addr
            else GrpcClusterAPI(addr, ca_pem.encode(), session_id)
        )
        try:
            end.logout()
        except (NotAuthenticated, ConnectionProblem):
            pass  # it ends when it expires
        finally:
            end.close()
        raise
    issue_certs(profile, session_id, ttl)
    return profile


def ensure_certs(profile: Profile) -> None:
    """Reissue the certificate silently when it has expired but the session (or, for a
    SPIFFE login, the SVID) lives."""
    if cert_is_fresh(profile):
        return
    if profile.is_spiffe:
        from cli import mez_spiffe

        mez_spiffe.issue(profile, mez_spiffe.current_svid(profile))
        return
    issue_certs(profile)


def logout(profile: Profile) -> None:
    if profile.is_spiffe:
        return  # no session: the local files are all there is
    try:
        api = connect(profile)
        try:
            api.logout()
        finally:
            api.close()
    except (NotAuthenticated, ConnectionProblem):
        pass  # already gone server-side, or unreachable: still clean up locally
    forget_session(profile)


def current_user(profile: Profile) -> pb.GetCurrentUserResponse:
    api = connect(profile)
    try:
        return api.current_user()
    finally:
        api.close()


def list_nodes(
    profile: Profile, labels: Mapping[str, str] | None = None, name: str = ""
) -> list[pb.Node]:
    if profile.is_spiffe:
        raise BadParameter(
            "a SPIFFE login has no session to list nodes with",
            hint="reach a node by name: `mez ssh NODE` (the proxy resolves it and checks "
            "the certificate's node access)",
        )
    api = connect(profile)
    try:
        return api.list_nodes(labels or {}, name)
    finally:
        api.close()


def parse_selector(text: str) -> dict[str, str] | None:
    """``k=v[,k=v]`` as labels; None when ``text`` is a plain host name."""
    if "=" not in text:
        return None
    labels = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise BadParameter(f"invalid label selector {text!r}; use key=value[,key=value]")
        labels[key] = value
    return labels


# What a node's name, NAME.CLUSTER or id can look like (and all ssh gets to read).
_NODE_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,252}")


class NodeRef(Protocol):
    """What the OpenSSH command line needs of a node (a pb.Node is one)."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def addr(self) -> str: ...


@dataclass(frozen=True)
class NamedNode:
    """A node as the user named it (name, name.cluster or id), for the proxy to find.
    All three are principals of the node's host certificate, and the proxy routes by
    no other key, so ssh checks that certificate for the name given (HostKeyAlias)."""

    id: str
    name: str
    addr: str = ""


def resolve_targets(profile: Profile, host: str) -> list[NodeRef]:
    """A node name, a node id, or a label selector (every match). Through a proxy a
    name needs no RPC: the proxy resolves it under the same role and lock rules as
    ListNodes, with the same answer for a node that is not there and one the roles do
    not reach, so `mez ssh NAME` execs ssh at once."""
    selector = parse_selector(host)
    if selector is None and (profile.proxy_addr or profile.is_spiffe):
        if not _NODE_REF.fullmatch(host):
            raise BadParameter(
                f"invalid node name {host[:80]!r}", hint="a node's name, NAME.CLUSTER or id"
            )
        return [NamedNode(id=host, name=host)]
    if selector is not None:
        found = list_nodes(profile, selector)
        if not found:
            raise NotFound(f"no node you can reach matches {host!r}", hint="see `mez ls`")
        return list(found)
    return [find_node(profile, host)]


def find_node(profile: Profile, host: str) -> pb.Node:
    """The node named (or with the id) ``host`` that the user may reach, asked of auth."""
    nodes = list_nodes(profile, name=host)  # auth finds it: no walk of the whole fleet
    exact = [n for n in nodes if host in (n.id, n.name)]
    if not exact:
        raise NotFound(f"no node named {host!r} that you can reach", hint="see `mez ls`")
    return exact[0]


def split_login(target: str, default: str) -> tuple[str, str]:
    login, sep, host = target.rpartition("@")
    return (login if sep else default), host


def ssh_binary(name: str = "ssh") -> str:
    path = shutil.which(name)
    if path is None:
        raise ConnectionProblem(
            f"OpenSSH's `{name}` is not installed",
            hint="install it (Debian: apt-get install openssh-client)",
        )
    return path


def identity(profile: Profile) -> SSHIdentity:
    return SSHIdentity(profile.key_path, profile.cert_path, profile.known_hosts_path)


def proxy_alias(profile: Profile) -> str:
    return f"mezite-proxy.{profile.cluster}"


def proxy_ssh_addrs(web_addrs: str, first: pb.ProxyPingResponse, known: str = "") -> str:
    """The SSH hops of every proxy in ``web_addrs`` that answers now (``first`` is the
    ping already made) and those ``known`` from the last login through the same proxies
    (one may be down now), joined with commas, for `mez ssh` to fail over between."""
    from proto.addr import parse_addr_list
    from proto.web_client import ping

    found = [first.proxy_ssh_addr]
    for web in parse_addr_list(web_addrs, 443)[1:]:
        try:
            found.append(ping(str(web)).proxy_ssh_addr)
        except ConnectionProblem:
            continue  # down at login: the others still serve
    found += known.split(",")
    return ",".join(dict.fromkeys(a for a in found if a))


def reachable_proxy(addrs: str, timeout: float = 2.0) -> HostPort:
    """The first of the proxy SSH hops ``addrs`` that takes a TCP connection (else the
    first): OpenSSH's ProxyJump names one host, so mez chooses it at each run."""
    import socket

    from proto.addr import parse_addr_list

    hops = parse_addr_list(addrs)
    if len(hops) == 1:
        return hops[0]
    for hop in hops:
        try:
            socket.create_connection((hop.host, hop.port), timeout=timeout).close()
        except OSError:
            continue
        return hop
    return hops[0]


def proxy_block(profile: Profile) -> HostBlock:
    """The cluster's proxy as a jump host, logging in as the default login."""
    proxy = reachable_proxy(profile.proxy_addr)
    return host_block(
        [proxy_alias(profile)],
        identity(profile),
        ("HostName", proxy.host),
        ("Port", str(proxy.port)),
        ("User", default_login(profile)),
        ("HostKeyAlias", "proxy"),
    )


def proxy_ssh_config(profile: Profile) -> Path:
    """An OpenSSH config routing through the cluster's proxy. OpenSSH applies
    command-line options to the destination only, so the jump host's identity has to be
    in a config file."""
    path = profile.dir / "ssh_config"
    text = render(
        [f"Written by mez for cluster {profile.cluster}; rewritten at every login."],
        [
            proxy_block(profile),
            host_block([f"* !{proxy_alias(profile)}"], identity(profile),
                       ("ProxyJump", proxy_alias(profile))),
        ],
    )  # fmt: skip
    try:
        unchanged = path.read_text() == text
    except OSError:
        unchanged = False
    if not unchanged:  # every `mez ssh` renders it; an fsync'd rewrite only when it differs
        write_private(path, text, mode=0o644)
    return path


def ssh_options(profile: Profile, node: NodeRef, extra: Sequence[str] = ()) -> list[str]:
    """The options that pin a connection to Mezite's identity and host CA; ``extra``
    (a caller's own ssh options) goes after the pinned ones, so that it cannot change
    them, and before the defaults, so that it can change those."""
    if profile.proxy_addr:
        # The config file pins the rest; a command-line option would beat it, so the
        # caller's options are vetted before they get here (cli/sshargs.py).
        return ["-F", str(proxy_ssh_config(profile)), "-o", f"HostKeyAlias={node.id}",
                *extra]  # fmt: skip
    addr = HostPort.parse(node.addr)
    where = [("HostName", addr.host), ("Port", str(addr.port)), ("HostKeyAlias", node.id)]
    return [
        *command_line([*where, *identity(profile).pinned()]),
        *extra,
        *command_line([("BatchMode", "no"), *DEFAULTS]),
    ]


def ssh_argv(
    profile: Profile, node: NodeRef, login: str, flags: Sequence[str], command: Sequence[str]
) -> list[str]:
    # "--" before the host: OpenSSH would otherwise parse options again after the host,
    # and a remote command starting with "-" must stay a command.
    return [ssh_binary(), *ssh_options(profile, node, flags), "-l", login, "--", node.name,
            *command]  # fmt: skip


def default_login(profile: Profile) -> str:
    """The first login the certificate allows (its principals), else the user name."""
    logins = certificate_logins(profile.cert_path.read_bytes())
    if profile.user in logins or not logins:
        return profile.user
    return logins[0]
