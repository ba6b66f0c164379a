"""Per-RPC authentication and the classification of every RPC.

Every method of ``mezite.v1.AuthService`` sits in exactly one of four lists below; a test
walks the service descriptor and fails when one is missing or listed twice. A method path
that is not in the table is refused: default deny.

Credentials come from call metadata, parsed strictly:
- ``authorization: Bearer <session id>`` for users (exactly one value, exact scheme,
  bounded length and alphabet);
- ``x-agent-id: <id>`` for agents, honoured only when the client certificate verified on
  the same TLS connection names that id (subject CN). The certificate alone, without the
  header, authenticates nothing.
A call carrying both is refused: one call, one principal.

Once identified, a caller is checked against the locks in force (except for the calls in
``LOCK_EXEMPT_METHODS``).
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from proto.errors import AccessDenied, BadParameter, NotAuthenticated
from proto.kinds import AgentKind

SERVICE = "mezite.v1.AuthService"


def _paths(*names: str) -> frozenset[str]:
    return frozenset(f"/{SERVICE}/{name}" for name in names)


UNAUTHENTICATED_METHODS = _paths(
    "Ping",
    "GetClusterCAs",
    "AuthenticateLocal",
    "AcceptInvite",
    "RegisterAgent",
    "RegisterUsingIAMMethod",
    "BootstrapAgentIdentity",
    "AuthenticateSPIFFE",
    "GetSPIFFEBundle",
)
# Users: a session, or the local admin identity acting as the operator.
USER_METHODS = _paths(
    "Logout",
    "GetCurrentUser",
    "IssueUserCerts",
    "ListNodes",
    "SearchAuditEvents",
    "ListSessionRecordings",
    "GetSessionRecording",
)
AGENT_METHODS = _paths(
    "Heartbeat",
    "EmitAuditEvent",
    "RenewHostCerts",
    "RenewAgentIdentity",
    "WatchLocks",
    "IssueWorkloadSVIDs",
    "UploadSessionRecording",
)
ADMIN_ONLY_METHODS = _paths(
    "GetClusterStatus",
    "CreateUser",
    "ListUsers",
    "DeleteUser",
    "ResetUser",
    "UpsertRole",
    "ListRoles",
    "DeleteRole",
    "CreateToken",
    "ListTokens",
    "DeleteToken",
    "ListAgents",
    "DeleteAgent",
    "CreateAgentIdentity",
    "ListAgentIdentities",
    "DeleteAgentIdentity",
    "SetAgentIdentityLock",
    "CreateLock",
    "ListLocks",
    "DeleteLock",
    "ExportKRL",
    "IssueSVID",
    "PutSPIFFETrust",
    "ListSPIFFETrust",
    "DeleteSPIFFETrust",
    "PutWorkloadRule",
    "ListWorkloadRules",
    "DeleteWorkloadRule",
)
# A locked user may log out; a locked node still learns of its lock, and still reports
# what it did about it (the sessions it ended).
LOCK_EXEMPT_METHODS = _paths("Logout", "WatchLocks", "EmitAuditEvent")


class Access(enum.Enum):
    UNAUTHENTICATED = "unauthenticated"
    USER = "user"
    AGENT = "agent"
    ADMIN = "admin"


def _build_table() -> dict[str, Access]:
    table: dict[str, Access] = {}
    for access, methods in (
        (Access.UNAUTHENTICATED, UNAUTHENTICATED_METHODS),
        (Access.USER, USER_METHODS),
        (Access.AGENT, AGENT_METHODS),
        (Access.ADMIN, ADMIN_ONLY_METHODS),
    ):
        for method in methods:
            if method in table:
                raise RuntimeError(f"{method} is classified twice")
            table[method] = access
    return table


METHOD_ACCESS: Mapping[str, Access] = _build_table()

ADMIN_ROLE = "admin"
ADMIN_AGENT_KIND = AgentKind.ADMIN
MAX_AUTHORIZATION_LEN = 256
MAX_AGENT_ID_LEN = 128
_SESSION_ID_RE = re.compile(r"[A-Za-z0-9_-]{22,128}")
AGENT_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}")


class PrincipalKind(enum.StrEnum):
    ANONYMOUS = "anonymous"
    USER = "user"
    AGENT = "agent"


@dataclass(frozen=True)
class Principal:
    """Who is calling, as established by the guard."""

    kind: PrincipalKind
    name: str = ""
    roles: tuple[str, ...] = ()
    agent_kind: AgentKind | None = None  # for agents
    # The immutable id of this incarnation of the user or agent identity.
    incarnation: str = ""
    # For agents, the name they were registered under (an agent identity's name).
    identity: str = ""
    session_key: str = field(default="", repr=False)
    session_expires: float = 0.0

    @property
    def is_admin(self) -> bool:
        if self.kind == PrincipalKind.USER:
            return ADMIN_ROLE in self.roles
        return self.kind == PrincipalKind.AGENT and self.agent_kind == AgentKind.ADMIN

    @property
    def acts_as_user(self) -> bool:
        """Users, the local admin identity acting as the operator, agent identities
        (bots), which hold roles like users do, and proxies, which list nodes to route
        users to (user-only calls such as IssueUserCerts check for a session)."""
        return self.kind == PrincipalKind.USER or (
            self.kind == PrincipalKind.AGENT
            and (self.is_admin or self.agent_kind in (AgentKind.BOT, AgentKind.PROXY))
        )


ANONYMOUS = Principal(kind=PrincipalKind.ANONYMOUS)


class SessionResolver(Protocol):
    async def resolve_session(self, session_id: str) -> Principal:
        """The user a live session belongs to; NotAuthenticated otherwise."""
        ...


class AgentResolver(Protocol):
    async def resolve_agent(self, agent_id: str, cert_kind: str) -> Principal:
        """The registered, unlocked agent with this id; NotAuthenticated otherwise."""
        ...


class LockEnforcer(Protocol):
    def enforce(self, principal: Principal) -> None:
        """Raise AccessDenied when a lock in force refuses ``principal``."""
        ...


class PeerLimiter(Protocol):
    def check(self, peer: str) -> None:
        """Raise LimitExceeded when ``peer`` has made too many unauthenticated calls."""
        ...


@dataclass(frozen=True)
class PeerCertificate:
    """The verified client certificate of a connection, reduced to what we use."""

    common_name: str
    organizational_unit: str
    organization: str

    @classmethod
    def from_ssl_dict(cls, cert: Mapping[str, Any] | None) -> PeerCertificate | None:
        """From ``SSLSocket.getpeercert()``: None or {} when no certificate was verified."""
        if not cert:
            return None
        attrs: dict[str, list[str]] = {}
        for rdn in cert.get("subject", ()):
            for key, value in rdn:
                attrs.setdefault(key, []).append(value)
        cns = attrs.get("commonName", [])
        ous = attrs.get("organizationalUnitName", [])
        orgs = attrs.get("organizationName", [])
        if len(cns) != 1 or len(ous) > 1 or len(orgs) > 1:
            return None
        return cls(common_name=cns[0], organizational_unit="".join(ous), organization="".join(orgs))


def _single(metadata: Mapping[str, Sequence[str | bytes]], key: str) -> str | None:
    values = metadata.get(key, ())
    if not values:
        return None
    if len(values) != 1:
        raise NotAuthenticated(f"exactly one {key} header is allowed")
    value = values[0]
    if not isinstance(value, str):
        raise NotAuthenticated(f"malformed {key} header")
    return value


def parse_bearer(value: str) -> str:
    """The session id of an ``Authorization: Bearer <id>`` value, strictly."""
    if len(value) > MAX_AUTHORIZATION_LEN:
        raise NotAuthenticated("authorization header too long")
    scheme, sep, token = value.partition(" ")
    if scheme != "Bearer" or not sep or not _SESSION_ID_RE.fullmatch(token):
        raise NotAuthenticated("malformed authorization header; expected 'Bearer <session id>'")
    return token


def parse_agent_id(value: str) -> str:
    if len(value) > MAX_AGENT_ID_LEN or not AGENT_ID_RE.fullmatch(value):
        raise NotAuthenticated("malformed x-agent-id header")
    return value


class Guard:
    """Authenticates one call and checks it against the method's class."""

    def __init__(
        self,
        sessions: SessionResolver,
        agents: AgentResolver,
        limiter: PeerLimiter | None = None,
        locks: LockEnforcer | None = None,
    ) -> None:
        self._sessions = sessions
        self._agents = agents
        self._limiter = limiter
        self._locks = locks

    @staticmethod
    def access_for(method: str) -> Access:
        access = METHOD_ACCESS.get(method)
        if access is None:
            raise AccessDenied(f"unknown method {method[:200]!r}")
        return access

    async def authenticate(
        self,
        method: str,
        metadata: Mapping[str, Sequence[str | bytes]],
        peer_cert: PeerCertificate | None,
        peer_addr: str = "",
    ) -> Principal:
        access = self.access_for(method)
        principal = await self._identify(metadata, peer_cert)
        if access is Access.UNAUTHENTICATED and self._limiter is not None:
            self._limiter.check(client_address(metadata, principal, peer_addr))
        self._authorize(access, principal)
        if self._locks is not None and method not in LOCK_EXEMPT_METHODS:
            self._locks.enforce(principal)
        return principal

    async def _identify(
        self,
        metadata: Mapping[str, Sequence[str | bytes]],
        peer_cert: PeerCertificate | None,
    ) -> Principal:
        authorization = _single(metadata, "authorization")
        agent_header = _single(metadata, "x-agent-id")
        if authorization is not None and agent_header is not None:
            raise NotAuthenticated("a call carries either a session or an agent id, not both")
        if authorization is not None:
            return await self._sessions.resolve_session(parse_bearer(authorization))
        if agent_header is not None:
            agent_id = parse_agent_id(agent_header)
            if peer_cert is None:
                raise NotAuthenticated("x-agent-id needs the agent's client certificate")
            if peer_cert.common_name != agent_id:
                raise NotAuthenticated("x-agent-id does not match the client certificate")
            return await self._agents.resolve_agent(agent_id, peer_cert.organizational_unit)
        return ANONYMOUS

    @staticmethod
    def _authorize(access: Access, principal: Principal) -> None:
        if access is Access.UNAUTHENTICATED:
            return
        if principal.kind == PrincipalKind.ANONYMOUS:
            raise NotAuthenticated("this call needs credentials", hint="log in with `mez login`")
        if access is Access.USER and not principal.acts_as_user:
            raise AccessDenied("this call is for users")
        if access is Access.AGENT and (principal.kind != PrincipalKind.AGENT or principal.is_admin):
            raise AccessDenied("this call is for agents")
        if access is Access.ADMIN and not principal.is_admin:
            raise AccessDenied("this call needs the admin role")


def client_address(
    metadata: Mapping[str, Sequence[str | bytes]], principal: Principal, peer_addr: str
) -> str:
    """Whom to rate-limit: the peer, or for a proxy (which carries many users' logins)
    the address it forwards in ``x-forwarded-for``. Nobody else may claim an address."""
    if principal.kind == PrincipalKind.AGENT and principal.agent_kind == AgentKind.PROXY:
        forwarded = metadata.get("x-forwarded-for", ())
        if len(forwarded) == 1 and isinstance(forwarded[0], str):
            try:
                return str(ipaddress.ip_address(forwarded[0].strip()))
            except ValueError:
                pass
    return peer_addr


def require_roles(principal: Principal, *roles: str) -> None:
    """Handler-level check for user methods open to a subset of roles (e.g. auditors)."""
    if principal.is_admin or any(role in principal.roles for role in roles):
        return
    raise AccessDenied(f"this call needs one of the roles: {', '.join(roles)}")


def validate_name(kind: str, name: str, *, max_len: int = 64) -> str:
    """Resource names (users, roles, nodes): bounded, no path or control characters."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._@-]*", name) or len(name) > max_len:
        raise BadParameter(
            f"invalid {kind} name {name[:80]!r}",
            hint=f"use up to {max_len} letters, digits, '.', '_', '@' or '-'",
        )
    return name
