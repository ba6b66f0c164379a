"""`mezd identity start`: keep an agent identity's short-lived credentials fresh.

State (``--data-dir``, 0700, under an exclusive file lock so two copies never share it):
the current keys, certificates, renewal token and generation. Outputs (``--dest``),
each written atomically: ``key``, ``key-cert.pub``, ``known_hosts`` (@cert-authority
for the host CA), ``ssh_config`` (so ``ssh -F DEST/ssh_config NODE`` and Ansible
work), ``tls.crt``, ``tls.key`` and ``ca.pem``; with an SVID (``--spiffe-role``), ``svid.pem``,
``svid_key.pem`` and ``bundle.pem`` too, renewed with the rest.

The renewal token and generation are saved before any output is touched: a crash after
auth renewed but before the save leaves a dead token, and the identity locks on the next
try — a stolen copy and a lost update look the same, and both need an admin."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from proto.addr import HostPort
from proto.client import AuthClient, ClientIdentity
from proto.clock import Clock, SystemClock
from proto.errors import AccessDenied
from proto.files import ensure_private_dir, write_private
from proto.keys import NodeKeys, TLSKey, new_node_keys, new_tls_key
from proto.lifecycle import IdentityDir, JoinKeys, Renewer, join_by_pin
from proto.sshconfig import SSHIdentity, certificate_logins, host_block, render

log = logging.getLogger(__name__)

STATE_FILE = "bot.json"
LOCK_FILE = "lock"


@dataclass(frozen=True)
class BotState:
    name: str
    cluster_name: str
    auth_server: str
    ca_pin: str
    generation: int
    renewal_token: str = field(repr=False)
    ssh_key_pem: str = field(repr=False)
    ssh_cert: str
    tls_key_pem: str = field(repr=False)
    tls_cert_pem: str
    tls_ca_pem: str
    host_ca_keys: list[str]
    expires: float
    agent_id: str = ""  # names this incarnation of the identity (from auth)
    # An identity made with --spiffe-role also carries an X.509 SVID.
    svid_key_pem: str = field(default="", repr=False)
    svid_pem: str = ""
    spiffe_bundle_pem: str = ""
    spiffe_id: str = ""

    def save(self, data_dir: Path) -> None:
        IdentityDir(data_dir, STATE_FILE).save(asdict(self))

    @classmethod
    def load(cls, data_dir: Path) -> BotState | None:
        found = IdentityDir(data_dir, STATE_FILE).load()
        return cls(**found[0]) if found else None

    def identity(self) -> ClientIdentity:
        from proto.trust import certificate_agent_id

        return ClientIdentity(
            agent_id=self.agent_id or certificate_agent_id(self.tls_cert_pem),
            cert_pem=self.tls_cert_pem.encode(),
            key_pem=self.tls_key_pem.encode(),
        )


@contextlib.contextmanager
def exclusive(data_dir: Path) -> Iterator[None]:
    """Refuse to run two copies on the same state: they would race the renewal token and
    lock the identity."""
    ensure_private_dir(data_dir)
    with open(data_dir / LOCK_FILE, "a") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AccessDenied(
                f"another `mezd identity` is running on {data_dir}",
                hint="stop it, or give this one its own --data-dir",
            ) from None
        yield


def _adopt(
    state: BotState | None, keys: NodeKeys, svid_key: TLSKey, creds: Any, **base: Any
) -> BotState:
    values = dict(
        svid_key_pem=svid_key.private_pem if creds.svid_chain_pem else "",
        svid_pem=creds.svid_chain_pem,
        spiffe_bundle_pem=creds.spiffe_bundle_pem,
        spiffe_id=creds.spiffe_id,
        generation=creds.generation,
        renewal_token=creds.renewal_token,
        ssh_key_pem=keys.ssh_private_pem,
        ssh_cert=creds.ssh_certificate,
        tls_key_pem=keys.tls_private_pem,
        tls_cert_pem=creds.tls_certificate_pem,
        tls_ca_pem=creds.tls_ca_pem,
        host_ca_keys=list(creds.host_ca_keys),
        expires=creds.expires,
        agent_id=creds.agent_id,
    )
    return replace(state, **values) if state else BotState(**base, **values)


def bootstrap(data_dir: Path, token: str, auth_server: str, ca_pin: str) -> BotState:
    from proto.v1 import auth_pb2 as pb

    # Kept until the state is saved: a bootstrap whose reply was lost, run again, sends
    # the same keys and is answered again (``proto.lifecycle.JoinKeys``).
    pending = JoinKeys(data_dir, "bootstrap")
    kept = pending.get(lambda: {"node": asdict(new_node_keys()), "svid": asdict(new_tls_key())})
    keys, svid_key = NodeKeys(**kept["node"]), TLSKey(**kept["svid"])  # the SVID's, if any
    request = pb.BootstrapAgentIdentityRequest(
        token=token, ssh_public_key=keys.ssh_public_line, tls_public_key_pem=keys.tls_public_pem,
        svid_public_key_pem=svid_key.public_pem,
    )  # fmt: skip
    with pending.refusal_discards():
        joined = join_by_pin(
            auth_server,
            ca_pin,
            lambda rpc: rpc.BootstrapAgentIdentity(request),
            hint="an agent identity starts with the bootstrap token `mezctl agent-identities "
            "add` prints, and each token works once",
            rerun=True,
        )
    creds = joined.reply.credentials
    state = _adopt(None, keys, svid_key, creds, name=creds.name, cluster_name=joined.cluster_name,
                   auth_server=auth_server, ca_pin=joined.ca_pin)  # fmt: skip
    state.save(data_dir)
    pending.discard()
    log.info("bootstrapped agent identity %s (generation %d)", state.name, state.generation)
    return state


def renew(data_dir: Path, state: BotState) -> BotState:
    from proto.v1 import auth_pb2 as pb

    keys, svid_key = new_node_keys(), new_tls_key()
    with AuthClient(state.auth_server, state.tls_ca_pem.encode(), state.identity()) as client:
        reply = client.rpc.RenewAgentIdentity(
            pb.RenewAgentIdentityRequest(
                renewal_token=state.renewal_token,
                generation=state.generation,
                ssh_public_key=keys.ssh_public_line,
                tls_public_key_pem=keys.tls_public_pem,
                svid_public_key_pem=svid_key.public_pem,
            ),
        )
    fresh = _adopt(state, keys, svid_key, reply.credentials)
    fresh.save(data_dir)
    log.info("renewed agent identity %s (generation %d)", fresh.name, fresh.generation)
    return fresh


def _node_hosts(state: BotState) -> list[tuple[str, str, str]]:
    """(name, addr, id) of the nodes the identity may reach, for ssh_config."""
    from proto.v1 import auth_pb2 as pb

    nodes: list[tuple[str, str, str]] = []
    page = ""
    with AuthClient(state.auth_server, state.tls_ca_pem.encode(), state.identity()) as client:
        while True:
            reply = client.rpc.ListNodes(pb.ListNodesRequest(page_token=page))
            nodes += [(n.name, n.addr, n.id) for n in reply.nodes]
            page = reply.next_page_token
            if not page:
                return nodes


def write_outputs(dest: Path, state: BotState) -> None:
    ensure_private_dir(dest)
    write_private(dest / "key", state.ssh_key_pem)
    write_private(dest / "key-cert.pub", state.ssh_cert + "\n", mode=0o644)
    write_private(
        dest / "known_hosts",
        "".join(f"@cert-authority * {k}\n" for k in state.host_ca_keys),
        mode=0o644,
    )
    write_private(dest / "tls.key", state.tls_key_pem)
    write_private(dest / "tls.crt", state.tls_cert_pem, mode=0o644)
    write_private(dest / "ca.pem", state.tls_ca_pem, mode=0o644)
    if state.svid_pem:  # as SPIFFE tools name them; 0600 like the key
        write_private(dest / "svid_key.pem", state.svid_key_pem)
        write_private(dest / "svid.pem", state.svid_pem)
        write_private(dest / "bundle.pem", state.spiffe_bundle_pem)
    write_private(dest / "ssh_config", ssh_config(dest, state, _node_hosts(state)), mode=0o644)


def ssh_config(dest: Path, state: BotState, nodes: list[tuple[str, str, str]]) -> str:
    """Each node by name (and name.cluster) at its address; every host with the
    identity's key and certificate, as its first login."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    header = [
        f"Mezite agent identity {state.name} on cluster {state.cluster_name}",
        f"written by `mezd identity` at {stamp}",
    ]
    blocks = []
    for name, addr, node_id in nodes:
        target = HostPort.parse(addr)
        where = [("HostName", target.host), ("Port", str(target.port)), ("HostKeyAlias", node_id)]
        blocks.append(host_block([name, f"{name}.{state.cluster_name}"], None, *where))
    logins = certificate_logins(state.ssh_cert.encode())
    identity = SSHIdentity(dest / "key", dest / "key-cert.pub", dest / "known_hosts")
    blocks.append(host_block(["*"], identity, *([("User", logins[0])] if logins else [])))
    return render(header, blocks)


def renewer(data_dir: Path, dest: Path, state: BotState, clock: Clock) -> Renewer[BotState]:
    """Renewal keeps the new token and generation (``renew`` saves them) before adopting
    writes the outputs."""
    return Renewer(
        f"agent identity {state.name}",
        state,
        renew=lambda current: asyncio.to_thread(renew, data_dir, current),
        adopt=lambda fresh: asyncio.to_thread(write_outputs, dest, fresh),
        clock=clock,
    )


async def run_forever(
    data_dir: Path, dest: Path, state: BotState, clock: Clock | None = None
) -> None:
    """Renew until auth refuses the identity (deleted or locked), then raise its error:
    the process ends with that error's exit code, for a supervisor or a person to see."""
    stopped = await renewer(data_dir, dest, state, clock or SystemClock()).run()
    raise stopped.error
