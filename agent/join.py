"""`mezd join`: verify the cluster by its CA pin, then redeem a one-time token for the
node's certificates. The token is sent only over a channel verified against the pinned
CA, so a wrong server never sees it."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.identity import NodeIdentity
from proto.bootstrap import fetch_ca_by_pin
from proto.client import AuthClient
from proto.errors import NotAuthenticated
from proto.keys import new_node_keys
from proto.trust import parse_pin

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JoinRequest:
    token: str
    auth_server: str
    ca_pin: str
    name: str
    labels: Mapping[str, str]
    advertise_addrs: Sequence[str]


def join(request: JoinRequest, data_dir: Path) -> NodeIdentity:
    from proto.v1 import auth_pb2 as pb

    NodeIdentity.refuse_rejoin(data_dir)
    pin = parse_pin(request.ca_pin)
    ca_pem = fetch_ca_by_pin(request.auth_server, pin)
    keys = new_node_keys()
    with AuthClient(request.auth_server, ca_pem.encode()) as client:
        cluster = client.rpc.Ping(pb.PingRequest()).cluster_name
        try:
            reply = client.rpc.RegisterAgent(
                pb.RegisterAgentRequest(
                    token=request.token,
                    name=request.name,
                    advertise_addrs=list(request.advertise_addrs),
                    ssh_public_key=keys.ssh_public_line,
                    tls_public_key_pem=keys.tls_public_pem,
                    labels=dict(request.labels),
                ),
            )
        except NotAuthenticated as err:
            raise NotAuthenticated(
                err.message,
                hint="a node joins with a token from `mezctl tokens add --type node`, "
                "and each token works once",
            ) from err
    creds = reply.credentials
    identity = NodeIdentity(
        agent_id=creds.agent_id,
        name=request.name,
        cluster_name=cluster,
        auth_server=request.auth_server,
        ca_pin=pin,
        labels=dict(creds.labels),
        advertise_addrs=list(request.advertise_addrs),
        ssh_host_key_pem=keys.ssh_private_pem,
        ssh_host_cert=creds.ssh_host_certificate,
        tls_key_pem=keys.tls_private_pem,
        tls_cert_pem=creds.tls_certificate_pem,
        tls_ca_pem=creds.tls_ca_pem,
        user_ca_keys=list(creds.user_ca_keys),
        host_ca_keys=list(creds.host_ca_keys),
        expires=creds.expires,
    )
    identity.save(data_dir)
    log.info("joined cluster %s as %s (%s)", cluster, request.name, creds.agent_id)
    return identity
