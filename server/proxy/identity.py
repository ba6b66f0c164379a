"""A proxy's identity when it runs without auth in its process (``roles = ["proxy"]``).

It joins once with a proxy-type token and the cluster's CA pin, like ``mezd join``; every
later start reuses what auth issued, and the running proxy renews it before it lapses.

Layout under ``<data dir>/proxy-identity/`` (0700)::

    current -> gen-<n>        a symlink, replaced atomically
    gen-<n>/identity.json     who we are, the cluster and its pin, when the certs expire
    gen-<n>/...               the files of ``server.proxy_files``

A generation is written in full before ``current`` points at it, so a crash during a
renewal leaves the previous, matching set in use: a key never meets another's cert.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from proto.errors import BadParameter, NotFound
from proto.keys import NodeKeys, TLSKey
from proto.lifecycle import Generations, IdentityDir, JoinKeys
from server import proxy_files as files

if TYPE_CHECKING:
    from proto.v1 import auth_pb2 as pb

log = logging.getLogger(__name__)

IDENTITY_DIR = "proxy-identity"
IDENTITY_FILE = "identity.json"


@dataclass(frozen=True)
class ProxyIdentity:
    agent_id: str
    name: str
    cluster_name: str
    ca_pin: str
    expires: float
    directory: Path  # the generation directory holding the files


@dataclass(frozen=True)
class IssuedKeys:
    """The private halves of what auth certified, generated on this machine."""

    node: NodeKeys
    web: TLSKey

    def renewal_request(self) -> pb.RenewHostCertsRequest:
        from proto.v1 import auth_pb2 as pb

        return pb.RenewHostCertsRequest(
            ssh_public_key=self.node.ssh_public_line,
            tls_public_key_pem=self.node.tls_public_pem,
            tls_server_public_key_pem=self.web.public_pem,
        )


def new_keys() -> IssuedKeys:
    from proto.keys import new_node_keys, new_tls_key

    return IssuedKeys(node=new_node_keys(), web=new_tls_key())


def join_keys(data_dir: Path, name: str) -> tuple[IssuedKeys, JoinKeys]:
    """The keys a join sends: those an earlier, unfinished join of ``name`` kept, or
    fresh ones, kept until ``save`` (``proto.lifecycle.JoinKeys``)."""
    pending = JoinKeys(identity_root(data_dir), name)
    doc = pending.get(lambda: asdict(new_keys()))
    return IssuedKeys(node=NodeKeys(**doc["node"]), web=TLSKey(**doc["web"])), pending


def identity_root(data_dir: Path) -> Path:
    return data_dir / IDENTITY_DIR


def load(data_dir: Path) -> ProxyIdentity | None:
    """The current identity, or None when this proxy has not joined yet."""
    root = identity_root(data_dir)
    directory = Generations(root).current()
    if directory is None:
        return None
    found = IdentityDir(directory, IDENTITY_FILE).load()
    if found is None:
        raise NotFound(
            f"{root / Generations.CURRENT} points at a missing identity",
            hint=f"move {root} away and join again with a fresh proxy token",
        )
    return ProxyIdentity(directory=directory, **found[0])


def save(
    data_dir: Path,
    keys: IssuedKeys,
    creds: pb.AgentCredentials,
    *,
    name: str,
    cluster_name: str,
    ca_pin: str,
) -> ProxyIdentity:
    """Write a new generation from auth's answer, switch ``current`` to it and drop the
    generations before it."""
    if not creds.tls_server_certificate_pem:
        raise BadParameter("auth issued no HTTPS server certificate for this proxy")
    generations = Generations(identity_root(data_dir))
    directory = generations.fresh()
    identity = ProxyIdentity(
        agent_id=creds.agent_id,
        name=name,
        cluster_name=cluster_name,
        ca_pin=ca_pin,
        expires=creds.expires,
        directory=directory,
    )
    written = {
        files.CLIENT_KEY: keys.node.tls_private_pem,
        files.CLIENT_CERT: creds.tls_certificate_pem,
        files.CA: creds.tls_ca_pem,
        files.WEB_KEY: keys.web.private_pem,
        files.WEB_CERT: creds.tls_server_certificate_pem,
        files.SSH_HOST_KEY: keys.node.ssh_private_pem,
        files.SSH_HOST_CERT: creds.ssh_host_certificate + "\n",
        files.USER_CA: "".join(line + "\n" for line in creds.user_ca_keys),
    }
    doc = {k: v for k, v in asdict(identity).items() if k != "directory"}
    IdentityDir(directory, IDENTITY_FILE).save(doc, written)
    generations.switch(directory)
    return identity
