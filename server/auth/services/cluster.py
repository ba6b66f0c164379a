"""Cluster-level RPCs: Ping, GetClusterCAs, GetClusterStatus."""

from __future__ import annotations

from proto import __version__
from proto.v1 import auth_pb2 as pb
from server.auth.crypto.ca import Authorities
from server.auth.rpc.router import CallContext


def authority_messages(cas: Authorities) -> list[pb.CertAuthority]:
    return [
        pb.CertAuthority(
            kind="user_ssh",
            public_data=cas.user_ssh.public_line,
            fingerprint=cas.user_ssh.fingerprint,
        ),
        pb.CertAuthority(
            kind="host_ssh",
            public_data=cas.host_ssh.public_line,
            fingerprint=cas.host_ssh.fingerprint,
        ),
        pb.CertAuthority(
            kind="host_x509", public_data=cas.host_x509.cert_pem, fingerprint=cas.host_x509.pin
        ),
        pb.CertAuthority(
            kind="spiffe_x509",
            public_data=cas.spiffe_x509.cert_pem,
            fingerprint=cas.spiffe_x509.pin,
        ),
    ]


class ClusterService:
    def __init__(self, cas: Authorities) -> None:
        self._cas = cas

    async def ping(self, request: pb.PingRequest, ctx: CallContext) -> pb.PingResponse:
        return pb.PingResponse(
            cluster_name=self._cas.cluster_name,
            server_version=__version__,
            ca_pin=self._cas.host_x509.pin,
        )

    async def get_cluster_cas(
        self, request: pb.GetClusterCAsRequest, ctx: CallContext
    ) -> pb.GetClusterCAsResponse:
        return pb.GetClusterCAsResponse(
            cluster_name=self._cas.cluster_name, authorities=authority_messages(self._cas)
        )

    async def get_cluster_status(
        self, request: pb.GetClusterStatusRequest, ctx: CallContext
    ) -> pb.GetClusterStatusResponse:
        return pb.GetClusterStatusResponse(
            cluster_name=self._cas.cluster_name,
            server_version=__version__,
            ca_pin=self._cas.host_x509.pin,
            authorities=authority_messages(self._cas),
            caller=f"{ctx.principal.kind}:{ctx.principal.name}",
        )
