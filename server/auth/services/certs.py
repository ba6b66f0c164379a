"""User certificates: IssueUserCerts for sessions, and the same signing path for agent
identities (bots), so both follow one set of rules."""

from __future__ import annotations

from dataclasses import dataclass

from proto.access import (
    INCARNATION_EXT,
    KIND_EXT,
    NO_RECORD_EXT,
    NODE_ACCESS_EXT,
    ROLES_EXT,
    USER_EXT,
)
from proto.clock import Clock
from proto.errors import AccessDenied, MeziteError
from proto.v1 import auth_pb2 as pb
from server.auth.auditing import Auditor
from server.auth.crypto.ca import Authorities, ssh_fingerprint
from server.auth.crypto.sshcert import (
    BACKDATE,
    SerialAllocator,
    UserCertRequest,
    clamp_ttl,
    key_id,
    parse_public_key,
    sign_user_cert,
    validate_principals,
)
from server.auth.rbac import AccessChecker, load_checker
from server.auth.rpc.guard import PrincipalKind
from server.auth.rpc.router import CallContext
from server.auth.stores.roles import RoleStore
from server.auth.stores.users import UserStore


def option_extensions(checker: AccessChecker) -> dict[str, str]:
    opts = checker.options()
    extensions = {}
    if opts.permit_pty:
        extensions["permit-pty"] = ""
    if opts.port_forwarding:
        extensions["permit-port-forwarding"] = ""
    if opts.agent_forwarding:
        extensions["permit-agent-forwarding"] = ""
    if not opts.record_sessions:
        extensions[NO_RECORD_EXT] = ""  # absent (old certificates too): recorded
    return extensions


@dataclass(frozen=True)
class SignedUserCert:
    certificate: str
    serial: int
    valid_before: int


class UserCertSigner:
    """Signs user certificates for a name and its roles (a user, or an agent identity)."""

    def __init__(
        self, cas: Authorities, serials: SerialAllocator, auditor: Auditor, clock: Clock
    ) -> None:
        self._cas = cas
        self._serials = serials
        self._audit = auditor
        self._clock = clock

    async def sign(
        self,
        *,
        name: str,
        incarnation: str,
        checker: AccessChecker,
        public_key_line: str,
        requested_ttl: float,
        ttl_cap: float = 0.0,
        not_after: float = 0.0,
        cert_type: str = "user",
    ) -> SignedUserCert:
        """Every refusal is audited as cert.create.failed and changes nothing. The
        certificate ends no later than ``not_after`` (the session's end), when given."""
        try:
            public_key = parse_public_key(public_key_line)
            principals = validate_principals(checker.logins())
            limit = (
                min(checker.max_session_ttl(), ttl_cap) if ttl_cap else checker.max_session_ttl()
            )
            ttl = clamp_ttl(requested_ttl, limit)
        except MeziteError as err:
            self.refused(name, err)
            raise
        now = self._clock.now()
        valid_after, valid_before = int(now - BACKDATE), int(now + ttl)
        if not_after:
            valid_before = min(valid_before, int(not_after))
            ttl = max(0.0, valid_before - now)
        serial = await self._serials.next()
        extensions = option_extensions(checker)
        extensions[USER_EXT] = name
        extensions[KIND_EXT] = cert_type
        extensions[INCARNATION_EXT] = incarnation
        extensions[ROLES_EXT] = ",".join(checker.role_names)
        extensions[NODE_ACCESS_EXT] = checker.node_access()
        cert = sign_user_cert(
            self._cas.user_ssh,
            UserCertRequest(
                user=name,
                public_key=public_key,
                principals=principals,
                serial=serial,
                valid_after=valid_after,
                valid_before=valid_before,
                extensions=extensions,
            ),
        )
        # What the KRL export reads back: which certificates a lock's target holds.
        self._audit.emit(
            "cert.create",
            user=name,
            cert_type=cert_type,
            incarnation=incarnation,
            key_id=key_id(name, serial),
            serial=serial,
            principals=list(principals),
            roles=list(checker.role_names),
            ttl=ttl,
            valid_before=valid_before,
            key_fingerprint=ssh_fingerprint(public_key_line),
        )
        return SignedUserCert(certificate=cert, serial=serial, valid_before=valid_before)

    def refused(self, name: str, err: MeziteError) -> None:
        self._audit.emit("cert.create.failed", user=name, success=False, reason=err.message)


class CertService:
    def __init__(
        self,
        *,
        cas: Authorities,
        users: UserStore,
        roles: RoleStore,
        signer: UserCertSigner,
    ) -> None:
        self._cas = cas
        self._users = users
        self._roles = roles
        self._signer = signer

    async def issue_user_certs(
        self, request: pb.IssueUserCertsRequest, ctx: CallContext
    ) -> pb.IssueUserCertsResponse:
        name = ctx.principal.name
        try:
            if ctx.principal.kind != PrincipalKind.USER:
                raise AccessDenied("user certificates are issued to user sessions")
            _, checker = await load_checker(self._users, self._roles, name)
        except MeziteError as err:
            self._signer.refused(name, err)
            raise
        # A certificate never outlives the session that asked for it: logout and session
        # expiry bound every certificate.
        signed = await self._signer.sign(
            name=name,
            incarnation=ctx.principal.incarnation,
            checker=checker,
            public_key_line=request.ssh_public_key,
            requested_ttl=float(request.ttl_seconds),
            not_after=ctx.principal.session_expires,
        )
        return pb.IssueUserCertsResponse(
            ssh_certificate=signed.certificate,
            host_ca_keys=[self._cas.host_ssh.public_line],
            tls_ca_pem=self._cas.host_x509.cert_pem,
            valid_before=signed.valid_before,
        )
