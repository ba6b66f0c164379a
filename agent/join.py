"""`mezd join`: verify the cluster by its CA pin, then redeem a one-time token for the
node's certificates (``proto.lifecycle.join_by_pin``: the token is sent only over a
channel verified against the pinned CA, so a wrong server never sees it)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from agent.identity import NodeIdentity
from proto.keys import NodeKeys, new_node_keys
from proto.lifecycle import JoinKeys, join_by_pin, register_call

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


JOIN_METHODS = ("token", "iam")


@dataclass(frozen=True)
class JoinRequest:
    token: str  # the one-time token, or the iam token's name
    auth_server: str
    ca_pin: str
    name: str
    labels: Mapping[str, str]
    advertise_addrs: Sequence[str]
    join_method: str = "token"
    aws_region: str | None = None


def join(request: JoinRequest, data_dir: Path) -> NodeIdentity:
    from proto.v1 import auth_pb2 as pb

    NodeIdentity.refuse_rejoin(data_dir)
    pending = JoinKeys(data_dir, request.name)
    keys = NodeKeys(**pending.get(lambda: asdict(new_node_keys())))
    register = pb.RegisterAgentRequest(
        token=request.token,
        name=request.name,
        advertise_addrs=list(request.advertise_addrs),
        ssh_public_key=keys.ssh_public_line,
        tls_public_key_pem=keys.tls_public_pem,
        labels=dict(request.labels),
    )
    with pending.refusal_discards():
        joined = join_by_pin(
            request.auth_server,
            request.ca_pin,
            register_call(request.join_method, request.aws_region, register),
            hint="an IAM join names a token from `mezctl tokens add --join-method iam`"
            if request.join_method == "iam"
            else "a node joins with a token from `mezctl tokens add --type node`, "
            "and each token works once",
            rerun=True,
        )
    creds = joined.reply.credentials
    # Blank key material, filled in by the one mapping renewals use too.
    identity = NodeIdentity(
        agent_id=creds.agent_id,
        name=request.name,
        cluster_name=joined.cluster_name,
        auth_server=request.auth_server,
        ca_pin=joined.ca_pin,
        labels=dict(creds.labels),
        advertise_addrs=list(request.advertise_addrs),
        ssh_host_key_pem="",
        ssh_host_cert="",
        tls_key_pem="",
        tls_cert_pem="",
        tls_ca_pem="",
        user_ca_keys=[],
        host_ca_keys=[],
        expires=0.0,
    ).renewed(keys, creds)
    identity.save(data_dir)
    pending.discard()
    log.info("joined cluster %s as %s (%s)", joined.cluster_name, request.name, creds.agent_id)
    return identity
