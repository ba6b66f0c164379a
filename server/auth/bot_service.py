"""Agent identity RPCs: CreateAgentIdentity, ListAgentIdentities, DeleteAgentIdentity,
SetAgentIdentityLock (admin), BootstrapAgentIdentity (token), RenewAgentIdentity (mTLS)."""

from __future__ import annotations

import contextlib
import hashlib

from cryptography.hazmat.primitives.serialization import Encoding

from proto.clock import Clock
from proto.errors import (
    AccessDenied,
    BadParameter,
    CompareFailed,
    MeziteError,
    NotAuthenticated,
    NotFound,
)
from proto.v1 import auth_pb2 as pb
from server.auth.agent_identities import (
    AgentIdentityState,
    AgentIdentityStore,
    bot_agent_id,
)
from server.auth.agents import AGENTS_PREFIX, AgentRecord, AgentStore
from server.auth.auditing import Auditor
from server.auth.ca import Authorities
from server.auth.cert_service import UserCertSigner
from server.auth.grpc_auth import validate_name
from server.auth.node_service import load_tls_public_key
from server.auth.rbac import AccessChecker
from server.auth.roles import RoleStore
from server.auth.router import CallContext
from server.auth.secret_tokens import new_token
from server.auth.sshcert import MAX_CERT_TTL
from server.auth.users import validate_user_fields
from server.auth.x509 import issue_client_cert
from server.backend import Backend

DEFAULT_BOT_TTL = 3600.0
DEFAULT_BOOTSTRAP_TTL = 3600.0
MAX_BOOTSTRAP_TTL = 7 * 24 * 3600.0
RENEWAL_REFUSED = "agent identity renewal refused"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class AgentIdentityService:
    def __init__(
        self,
        *,
        cas: Authorities,
        store: AgentIdentityStore,
        agents: AgentStore,
        roles: RoleStore,
        signer: UserCertSigner,
        backend: Backend,
        auditor: Auditor,
        clock: Clock,
    ) -> None:
        self._cas = cas
        self._store = store
        self._agents = agents
        self._roles = roles
        self._signer = signer
        self._backend = backend
        self._audit = auditor
        self._clock = clock

    # --- admin ----------------------------------------------------------------------------

    async def create_agent_identity(
        self, request: pb.CreateAgentIdentityRequest, ctx: CallContext
    ) -> pb.CreateAgentIdentityResponse:
        name = validate_name("agent identity", request.name)
        roles = list(dict.fromkeys(request.roles))
        if not roles or len(roles) > 32:
            raise BadParameter("an agent identity needs 1 to 32 roles")
        for role in roles:
            await self._roles.get(role)
        logins = tuple(dict.fromkeys(request.logins))
        validate_user_fields(name, roles, list(logins))
        checker = AccessChecker(await self._roles.get_many(roles), logins)
        if not checker.logins():
            raise BadParameter(
                f"agent identity {name!r} would have no logins",
                hint="pass --logins, or roles that name logins",
            )
        ttl = float(request.ttl_seconds or DEFAULT_BOT_TTL)
        token_ttl = float(request.token_ttl_seconds or DEFAULT_BOOTSTRAP_TTL)
        if not 60 <= ttl <= MAX_CERT_TTL or not 60 <= token_ttl <= MAX_BOOTSTRAP_TTL:
            raise BadParameter("TTL must be 1m..30h and token TTL 1m..7d")
        state = AgentIdentityState(
            name=name, roles=tuple(roles), ttl=ttl, created=self._clock.now(), logins=logins
        )
        await self._store.create(state)
        token, expires = await self._store.new_bootstrap_token(name, token_ttl)
        self._audit.emit(
            "agent_identity.create", user=ctx.principal.name, name=name, roles=roles, ttl=ttl
        )
        return pb.CreateAgentIdentityResponse(bootstrap_token=token.text, token_expires=expires)

    async def list_agent_identities(
        self, request: pb.ListAgentIdentitiesRequest, ctx: CallContext
    ) -> pb.ListAgentIdentitiesResponse:
        return pb.ListAgentIdentitiesResponse(
            identities=[
                pb.AgentIdentity(
                    name=s.name,
                    roles=list(s.roles),
                    generation=s.generation,
                    last_renewed=s.last_renewed,
                    locked=s.locked,
                    ttl_seconds=int(s.ttl),
                    logins=list(s.logins),
                )
                for s in await self._store.list()
            ]
        )

    async def delete_agent_identity(
        self, request: pb.DeleteAgentIdentityRequest, ctx: CallContext
    ) -> pb.DeleteAgentIdentityResponse:
        await self._store.delete(request.name)
        # Its certificate stops working at once: the guard needs the agent record.
        with contextlib.suppress(NotFound):
            await self._backend.delete(AGENTS_PREFIX + bot_agent_id(request.name))
        await self._store.drop_bootstrap_tokens(request.name)
        self._audit.emit("agent_identity.delete", user=ctx.principal.name, name=request.name)
        return pb.DeleteAgentIdentityResponse()

    async def set_agent_identity_lock(
        self, request: pb.SetAgentIdentityLockRequest, ctx: CallContext
    ) -> pb.SetAgentIdentityLockResponse:
        await self._set_lock(request.name, request.locked)
        kind = "agent_identity.lock" if request.locked else "agent_identity.unlock"
        self._audit.emit(kind, user=ctx.principal.name, name=request.name)
        return pb.SetAgentIdentityLockResponse()

    async def _set_lock(self, name: str, locked: bool) -> None:
        # The agent record first: it is what the guard checks on every call.
        try:
            record = await self._agents.get(bot_agent_id(name))
        except NotFound:
            record = None
        if record is not None:
            await self._agents.put(AgentRecord(**{**record.__dict__, "locked": locked}))
        await self._store.update(name, locked=locked)

    # --- the identity itself ----------------------------------------------------------------

    async def _credentials(
        self, state: AgentIdentityState, ssh_key: str, tls_pem: str, generation: int,
        renewal: str,
    ) -> pb.AgentIdentityCredentials:  # fmt: skip
        checker = AccessChecker(await self._roles.get_many(state.roles), state.logins)
        signed = await self._signer.sign(
            name=state.name,
            checker=checker,
            public_key_line=ssh_key,
            requested_ttl=state.ttl,
            ttl_cap=state.ttl,
            cert_type="agent_identity",
        )
        tls_cert = issue_client_cert(
            self._cas.host_x509,
            load_tls_public_key(tls_pem),
            agent_id=bot_agent_id(state.name),
            kind="bot",
            cluster_name=self._cas.cluster_name,
            now=self._clock.now(),
            ttl=float(signed.valid_before) - self._clock.now(),
        )
        return pb.AgentIdentityCredentials(
            name=state.name,
            ssh_certificate=signed.certificate,
            tls_certificate_pem=tls_cert.public_bytes(Encoding.PEM).decode(),
            tls_ca_pem=self._cas.host_x509.cert_pem,
            host_ca_keys=[self._cas.host_ssh.public_line],
            renewal_token=renewal,
            generation=generation,
            expires=signed.valid_before,
        )

    async def bootstrap_agent_identity(
        self, request: pb.BootstrapAgentIdentityRequest, ctx: CallContext
    ) -> pb.BootstrapAgentIdentityResponse:
        try:
            # Keys are checked before the one-time token is spent.
            from server.auth.sshcert import parse_public_key

            parse_public_key(request.ssh_public_key)
            load_tls_public_key(request.tls_public_key_pem)
            name = await self._store.consume_bootstrap_token(request.token)
            item, state = await self._store.get_item(name)
            if state.locked or state.generation != 0:
                raise NotAuthenticated("this agent identity cannot be bootstrapped")
        except MeziteError as err:
            self._audit.emit(
                "agent_identity.bootstrap", success=False, reason=err.message, peer=ctx.peer_addr
            )
            if isinstance(err, NotFound):
                raise NotAuthenticated("invalid, expired or already used bootstrap token") from err
            raise
        renewal = new_token().text
        fresh = AgentIdentityState(**{**state.__dict__, "generation": 1,
                                      "renewal_hash": _hash(renewal),
                                      "last_renewed": self._clock.now()})  # fmt: skip
        creds = await self._credentials(
            state, request.ssh_public_key, request.tls_public_key_pem, 1, renewal
        )
        await self._store.swap(item, fresh)
        await self._agents.put(
            AgentRecord(
                id=bot_agent_id(name),
                kind="bot",
                name=name,
                created=self._clock.now(),
                roles=state.roles,
            )
        )
        self._audit.emit("agent_identity.bootstrap", user=name, generation=1, peer=ctx.peer_addr)
        return pb.BootstrapAgentIdentityResponse(credentials=creds)

    async def renew_agent_identity(
        self, request: pb.RenewAgentIdentityRequest, ctx: CallContext
    ) -> pb.RenewAgentIdentityResponse:
        principal = ctx.principal
        if principal.agent_kind != "bot":
            raise AccessDenied("this call is for agent identities")
        name = principal.name.removeprefix("bot.")
        item, state = await self._store.get_item(name)
        if state.locked:
            raise NotAuthenticated(RENEWAL_REFUSED)
        token_ok = bool(state.renewal_hash) and _safe_equal(
            _hash(request.renewal_token), state.renewal_hash
        )
        if not token_ok or request.generation != state.generation:
            await self._lock_for_mismatch(
                name, state, request.generation, "renewal token or generation"
            )
            raise NotAuthenticated(RENEWAL_REFUSED)
        await self._precheck(state, request.ssh_public_key, request.tls_public_key_pem)
        renewal = new_token().text
        fresh = AgentIdentityState(**{**state.__dict__,
                                      "generation": state.generation + 1,
                                      "renewal_hash": _hash(renewal),
                                      "last_renewed": self._clock.now()})  # fmt: skip
        try:
            await self._store.swap(item, fresh)
        except CompareFailed:
            # Someone renewed with the same credentials at the same moment: two holders.
            await self._lock_for_mismatch(name, state, request.generation, "concurrent renewal")
            raise NotAuthenticated(RENEWAL_REFUSED) from None
        creds = await self._credentials(
            state, request.ssh_public_key, request.tls_public_key_pem, fresh.generation, renewal
        )
        self._audit.emit("agent_identity.renew", user=name, generation=fresh.generation)
        return pb.RenewAgentIdentityResponse(credentials=creds)

    async def _precheck(self, state: AgentIdentityState, ssh_key: str, tls_pem: str) -> None:
        """What could make signing fail, checked before a generation is spent."""
        from server.auth.sshcert import parse_public_key, validate_principals

        parse_public_key(ssh_key)
        load_tls_public_key(tls_pem)
        checker = AccessChecker(await self._roles.get_many(state.roles), state.logins)
        validate_principals(checker.logins())

    async def _lock_for_mismatch(
        self, name: str, state: AgentIdentityState, presented: int, why: str
    ) -> None:
        await self._set_lock(name, True)
        self._audit.emit(
            "agent_identity.generation_mismatch",
            user=name,
            expected_generation=state.generation,
            presented_generation=presented,
            reason=why,
        )


def _safe_equal(a: str, b: str) -> bool:
    import hmac

    return hmac.compare_digest(a, b)
