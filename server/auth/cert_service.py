"""IssueUserCerts: a session's public key signed into a short-lived SSH user certificate."""

from __future__ import annotations

from proto.access import NODE_ACCESS_EXT, ROLES_EXT, USER_EXT
from proto.clock import Clock
from proto.errors import AccessDenied, MeziteError
from proto.v1 import auth_pb2 as pb
from server.auth.auditing import Auditor
from server.auth.ca import Authorities, ssh_fingerprint
from server.auth.rbac import AccessChecker, load_checker
from server.auth.roles import RoleStore
from server.auth.router import CallContext
from server.auth.sshcert import (
    BACKDATE,
    SerialAllocator,
    UserCertRequest,
    clamp_ttl,
    key_id,
    parse_public_key,
    sign_user_cert,
    validate_principals,
)
from server.auth.users import UserStore


def option_extensions(checker: AccessChecker) -> dict[str, str]:
    opts = checker.options()
    extensions = {}
    if opts.permit_pty:
        extensions["permit-pty"] = ""
    if opts.port_forwarding:
        extensions["permit-port-forwarding"] = ""
    if opts.agent_forwarding:
        extensions["permit-agent-forwarding"] = ""
    return extensions


class CertService:
    def __init__(
        self,
        *,
        cas: Authorities,
        users: UserStore,
        roles: RoleStore,
        serials: SerialAllocator,
        auditor: Auditor,
        clock: Clock,
    ) -> None:
        self._cas = cas
        self._users = users
        self._roles = roles
        self._serials = serials
        self._audit = auditor
        self._clock = clock

    async def issue_user_certs(
        self, request: pb.IssueUserCertsRequest, ctx: CallContext
    ) -> pb.IssueUserCertsResponse:
        name = ctx.principal.name
        try:
            if ctx.principal.kind != "user":
                raise AccessDenied("user certificates are issued to user sessions")
            public_key = parse_public_key(request.ssh_public_key)
            user, checker = await load_checker(self._users, self._roles, name)
            principals = validate_principals(checker.logins())
            ttl = clamp_ttl(float(request.ttl_seconds), checker.max_session_ttl())
        except MeziteError as err:
            self._audit.emit("cert.create.failed", user=name, success=False, reason=err.message)
            raise
        now = self._clock.now()
        valid_after, valid_before = int(now - BACKDATE), int(now + ttl)
        serial = await self._serials.next()
        extensions = option_extensions(checker)
        extensions[USER_EXT] = user.name
        extensions[ROLES_EXT] = ",".join(user.roles)
        extensions[NODE_ACCESS_EXT] = checker.node_access()
        cert = sign_user_cert(
            self._cas.user_ssh,
            UserCertRequest(
                user=user.name,
                public_key=public_key,
                principals=principals,
                serial=serial,
                valid_after=valid_after,
                valid_before=valid_before,
                extensions=extensions,
            ),
        )
        self._audit.emit(
            "cert.create",
            user=user.name,
            cert_type="user",
            key_id=key_id(user.name, serial),
            serial=serial,
            principals=list(principals),
            ttl=ttl,
            key_fingerprint=ssh_fingerprint(request.ssh_public_key),
        )
        return pb.IssueUserCertsResponse(
            ssh_certificate=cert,
            host_ca_keys=[self._cas.host_ssh.public_line],
            tls_ca_pem=self._cas.host_x509.cert_pem,
            valid_before=valid_before,
        )
