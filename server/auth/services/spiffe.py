"""SPIFFE RPCs: AuthenticateSPIFFE (an SVID and a proof of its key for an SSH
certificate), GetSPIFFEBundle, and the admin's IssueSVID and trusted-domain management.

An SVID of this cluster's trust domain is checked against the SPIFFE CA, one of a
trusted external domain against that domain's bundle and role list; either way its role
must exist, and the certificate is for that role's logins and node access, named by the
SPIFFE ID, and ends no later than the SVID, the role's limit or ``auth.spiffe_cert_ttl``.
Every refusal is audited as ``spiffe.authenticate.failed`` with its reason and issues
nothing."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from proto.clock import Clock
from proto.errors import BadParameter, MeziteError, NotAuthenticated, NotFound
from proto.v1 import auth_pb2 as pb
from server.auth.auditing import Auditor
from server.auth.crypto.ca import Authorities
from server.auth.crypto.svid import (
    bundle_jwks,
    issue_svid,
    load_svid_key,
    make_spiffe_id,
    svid_trust_domain,
    verify_proof,
    verify_svid,
)
from server.auth.rbac import AccessChecker
from server.auth.rpc.router import CallContext
from server.auth.services.certs import UserCertSigner
from server.auth.stores.roles import RoleStore
from server.auth.stores.spiffe_trust import SPIFFETrust, SPIFFETrustStore

log = logging.getLogger(__name__)

DEFAULT_SVID_TTL = 3600.0
MAX_SVID_TTL = 30 * 24 * 3600.0


class SPIFFEService:
    def __init__(
        self,
        *,
        cas: Authorities,
        trust: SPIFFETrustStore,
        roles: RoleStore,
        signer: UserCertSigner,
        auditor: Auditor,
        clock: Clock,
        cert_ttl: float,
    ) -> None:
        self._cas = cas
        self._trust = trust
        self._roles = roles
        self._signer = signer
        self._audit = auditor
        self._clock = clock
        self._cert_ttl = cert_ttl

    # --- AuthenticateSPIFFE ------------------------------------------------------------

    async def authenticate_spiffe(
        self, request: pb.AuthenticateSPIFFERequest, ctx: CallContext
    ) -> pb.AuthenticateSPIFFEResponse:
        claimed = ""
        try:
            _, spiffe_id = svid_trust_domain(request.svid_chain_pem)
            claimed = str(spiffe_id)
            domain = spiffe_id.trust_domain
            trusted = None if domain == self._cas.trust_domain else await self._trust.get(domain)
            now = self._clock.now()
            verified = verify_svid(
                request.svid_chain_pem, lambda td: self._bundle(td, trusted), now
            )
            verify_proof(verified.leaf, request.proof_signature, self._cas.cluster_name,
                         request.ssh_public_key, request.proof_time, now)  # fmt: skip
            role = spiffe_id.role
            if trusted is not None and role not in trusted.roles:
                raise NotAuthenticated(f"the trust domain {domain!r} may not claim role {role!r}")
            found = await self._roles.get_many([role])
            if not found:
                raise NotAuthenticated(f"the SVID names role {role!r}, which does not exist")
            checker = AccessChecker(found)
            if not checker.logins():
                raise NotAuthenticated(
                    f"role {role!r} gives a SPIFFE identity no logins",
                    hint="give the role fixed logins: {{internal.logins}} are a user's",
                )
            signed = await self._signer.sign(
                name=claimed,
                incarnation=format(verified.leaf.serial_number, "x")[:64],
                checker=checker,
                public_key_line=request.ssh_public_key,
                requested_ttl=self._cert_ttl,
                ttl_cap=self._cert_ttl,
                not_after=verified.not_after,
                cert_type="spiffe",
            )
        except MeziteError as err:
            self._audit.emit("spiffe.authenticate.failed", user=claimed[:255], success=False,
                             reason=err.message, peer=ctx.peer_addr)  # fmt: skip
            raise
        self._audit.emit("spiffe.authenticate", user=claimed, role=role, serial=signed.serial,
                         trust_domain=domain, peer=ctx.peer_addr)  # fmt: skip
        return pb.AuthenticateSPIFFEResponse(
            ssh_certificate=signed.certificate,
            host_ca_keys=[self._cas.host_ssh.public_line],
            expires=float(signed.valid_before),
            spiffe_id=claimed,
            role=role,
            logins=list(checker.logins()),
        )

    def _bundle(
        self, domain: str, trusted: SPIFFETrust | None
    ) -> Sequence[x509.Certificate] | None:
        """Only the bundle of the leaf's own domain: a domain vouches for its own IDs."""
        if domain == self._cas.trust_domain:
            return [self._cas.spiffe_x509.cert]
        return trusted.certs if trusted is not None and trusted.trust_domain == domain else None

    # --- the bundle and issuance -------------------------------------------------------

    async def get_spiffe_bundle(
        self, request: pb.GetSPIFFEBundleRequest, ctx: CallContext
    ) -> pb.GetSPIFFEBundleResponse:
        ca = self._cas.spiffe_x509
        return pb.GetSPIFFEBundleResponse(
            trust_domain=self._cas.trust_domain,
            bundle_pem=ca.cert_pem,
            bundle_jwks=bundle_jwks(self._cas.trust_domain, [ca.cert], sequence=1),
        )

    async def issue_svid(
        self, request: pb.IssueSVIDRequest, ctx: CallContext
    ) -> pb.IssueSVIDResponse:
        spiffe_id = make_spiffe_id(self._cas.trust_domain, request.role, request.workload)
        if not await self._roles.get_many([request.role]):
            raise NotFound(f"role {request.role!r} not found", hint="`mezctl get roles` lists them")
        ttl = float(request.ttl_seconds) or DEFAULT_SVID_TTL
        if not 60 <= ttl <= MAX_SVID_TTL:
            raise BadParameter("an SVID's TTL is between 1 minute and 30 days")
        key = load_svid_key(request.public_key_pem)
        cert = issue_svid(self._cas.spiffe_x509, key, spiffe_id, now=self._clock.now(), ttl=ttl)
        self._audit.emit("spiffe.svid.issue", user=ctx.principal.name, spiffe_id=str(spiffe_id),
                         serial=format(cert.serial_number, "x"))  # fmt: skip
        return pb.IssueSVIDResponse(
            spiffe_id=str(spiffe_id),
            svid_chain_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
            bundle_pem=self._cas.spiffe_x509.cert_pem,
            expires=cert.not_valid_after_utc.timestamp(),
        )

    # --- trusted external domains ------------------------------------------------------

    async def put_spiffe_trust(
        self, request: pb.PutSPIFFETrustRequest, ctx: CallContext
    ) -> pb.PutSPIFFETrustResponse:
        given = request.trust
        trust = await self._trust.put(
            given.trust_domain, given.bundle_pem, list(given.roles), create=request.create
        )
        self._audit.emit("spiffe.trust.put", user=ctx.principal.name,
                         trust_domain=trust.trust_domain, roles=list(trust.roles),
                         created=request.create)  # fmt: skip
        return pb.PutSPIFFETrustResponse(trust=_trust_message(trust))

    async def list_spiffe_trust(
        self, request: pb.ListSPIFFETrustRequest, ctx: CallContext
    ) -> pb.ListSPIFFETrustResponse:
        return pb.ListSPIFFETrustResponse(
            trusts=[_trust_message(t) for t in await self._trust.list()]
        )

    async def delete_spiffe_trust(
        self, request: pb.DeleteSPIFFETrustRequest, ctx: CallContext
    ) -> pb.DeleteSPIFFETrustResponse:
        await self._trust.delete(request.trust_domain)
        self._audit.emit("spiffe.trust.delete", user=ctx.principal.name,
                         trust_domain=request.trust_domain)  # fmt: skip
        return pb.DeleteSPIFFETrustResponse()


def _trust_message(trust: SPIFFETrust) -> pb.SPIFFETrust:
    return pb.SPIFFETrust(
        trust_domain=trust.trust_domain,
        bundle_pem=trust.bundle_pem,
        roles=list(trust.roles),
        updated=trust.updated,
    )
