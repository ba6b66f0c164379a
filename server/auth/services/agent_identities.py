"""Agent identity RPCs: CreateAgentIdentity, ListAgentIdentities, DeleteAgentIdentity,
SetAgentIdentityLock (admin), BootstrapAgentIdentity (token), RenewAgentIdentity (mTLS)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import replace

from proto.clock import Clock
from proto.errors import (
    AccessDenied,
    BadParameter,
    CompareFailed,
    MeziteError,
    NotAuthenticated,
    NotFound,
)
from proto.failpoint import failpoint
from proto.kinds import AgentKind
from proto.locks import Lock, LockTarget, Subject
from proto.v1 import auth_pb2 as pb
from server.auth.auditing import Auditor
from server.auth.crypto.issuer import AgentIssuer, keys_fingerprint, load_tls_public_key
from server.auth.crypto.sshcert import MAX_CERT_TTL, parse_public_key, validate_principals
from server.auth.crypto.svid import load_svid_key, make_spiffe_id
from server.auth.rbac import AccessChecker
from server.auth.rpc.guard import validate_name
from server.auth.rpc.router import CallContext
from server.auth.stores.agent_identities import (
    BOOTSTRAP_FAILED,
    AgentIdentityState,
    AgentIdentityStore,
    bootstrap_index,
    dropped_bootstrap,
)
from server.auth.stores.agents import AGENTS_PREFIX, AgentRecord
from server.auth.stores.incarnations import new_incarnation
from server.auth.stores.locks import (
    CLOCK_SKEW,
    SYSTEM,
    LockCache,
    LockStore,
    audit_lock_created,
    lock_item,
    new_lock,
)
from server.auth.stores.roles import RoleStore
from server.auth.stores.secret_tokens import PendingToken, new_token, parse_token
from server.auth.stores.users import validate_user_fields
from server.backend import Delete, Item, Put

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
        issuer: AgentIssuer,
        store: AgentIdentityStore,
        roles: RoleStore,
        locks: LockStore,
        lock_cache: LockCache,
        auditor: Auditor,
        clock: Clock,
    ) -> None:
        self._issuer = issuer
        self._store = store
        self._roles = roles
        self._locks = locks
        self._lock_cache = lock_cache
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
        spiffe_role = request.spiffe_role
        if spiffe_role:
            await self._roles.get(spiffe_role)
            make_spiffe_id(self._issuer.trust_domain, spiffe_role, name)  # the ID it will name
        ttl = float(request.ttl_seconds or DEFAULT_BOT_TTL)
        token_ttl = float(request.token_ttl_seconds or DEFAULT_BOOTSTRAP_TTL)
        if not 60 <= ttl <= MAX_CERT_TTL or not 60 <= token_ttl <= MAX_BOOTSTRAP_TTL:
            raise BadParameter("TTL must be 1m..30h and token TTL 1m..7d")
        now = self._clock.now()
        token = new_token()
        state = AgentIdentityState(
            name=name, roles=tuple(roles), ttl=ttl, created=now, logins=logins,
            incarnation=new_incarnation(), spiffe_role=spiffe_role,
            bootstrap=PendingToken(token.name, token.secret_hash, now + token_ttl),
        )  # fmt: skip
        await self._store.create(state, Put(bootstrap_index(state)))
        self._audit.emit(
            "agent_identity.create", user=ctx.principal.name, name=name, roles=roles, ttl=ttl
        )
        return pb.CreateAgentIdentityResponse(
            bootstrap_token=token.text, token_expires=now + token_ttl
        )

    def _lock_of(self, state: AgentIdentityState) -> Lock | None:
        subject = Subject("agent_identity", state.name, state.incarnation, state.roles)
        return self._lock_cache.find(subject)

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
                    locked=self._lock_of(s) is not None,
                    ttl_seconds=int(s.ttl),
                    logins=list(s.logins),
                    spiffe_role=s.spiffe_role,
                )
                for s in await self._store.list()
            ]
        )

    async def delete_agent_identity(
        self, request: pb.DeleteAgentIdentityRequest, ctx: CallContext
    ) -> pb.DeleteAgentIdentityResponse:
        for _ in range(20):
            item, state = await self._store.get_item(request.name)
            # Its SSH certificates live at most its TTL: so does the lock on them.
            lock = new_lock(
                LockTarget(agent_identity=state.name, incarnation=state.incarnation),
                reason=f"agent identity {state.name} deleted by {ctx.principal.name}",
                created_by=SYSTEM, now=self._clock.now(), ttl=state.ttl + CLOCK_SKEW,
            )  # fmt: skip
            try:
                await self._store.remove(
                    item,
                    Delete(AGENTS_PREFIX + state.agent_id),  # the guard needs the agent record
                    *dropped_bootstrap(state),
                    Put(lock_item(lock)),
                )
            except CompareFailed:
                continue
            self._audit.emit("agent_identity.delete", user=ctx.principal.name, name=state.name)
            audit_lock_created(self._audit, lock, ctx.principal.name)
            return pb.DeleteAgentIdentityResponse()
        raise CompareFailed(f"agent identity {request.name!r} is changing too fast; try again")

    async def set_agent_identity_lock(
        self, request: pb.SetAgentIdentityLockRequest, ctx: CallContext
    ) -> pb.SetAgentIdentityLockResponse:
        state = await self._store.get(request.name)
        by = ctx.principal.name
        if request.locked:
            lock = new_lock(
                LockTarget(agent_identity=state.name),
                reason=f"agent identity {state.name} locked by {by}",
                created_by=by,
                now=self._clock.now(),
            )
            await self._locks.add(lock)
            audit_lock_created(self._audit, lock, by)
            self._audit.emit("agent_identity.lock", user=by, name=state.name)
            return pb.SetAgentIdentityLockResponse()
        # Unlock: the locks on this name and on this incarnation, never those that keep a
        # deleted incarnation's certificates dead.
        for lock in await self._locks.list():
            target = lock.target
            if target.agent_identity == state.name and target.incarnation in (
                "",
                state.incarnation,
            ):
                with_removed = await self._locks.remove(lock.name)
                self._audit.emit("lock.delete", user=by, lock=with_removed.name,
                                 target=with_removed.target.describe())  # fmt: skip
        self._audit.emit("agent_identity.unlock", user=by, name=state.name)
        return pb.SetAgentIdentityLockResponse()

    # --- the identity itself ----------------------------------------------------------------

    async def _credentials(
        self, state: AgentIdentityState, ssh_key: str, tls_pem: str, generation: int,
        renewal: str, svid_pem: str = "",
    ) -> pb.AgentIdentityCredentials:  # fmt: skip
        creds = await self._identity_credentials(state, ssh_key, tls_pem, generation, renewal)
        if state.spiffe_role:
            spiffe_id, chain = self._issuer.svid(
                svid_pem, state.spiffe_role, state.name, creds.expires - self._clock.now()
            )
            creds.svid_chain_pem, creds.spiffe_id = chain, spiffe_id
            creds.spiffe_bundle_pem = self._issuer.spiffe_bundle_pem
            self._audit.emit("spiffe.svid.issue", user=state.name, spiffe_id=spiffe_id,
                             generation=generation)  # fmt: skip
        return creds

    @staticmethod
    def _check_svid_key(state: AgentIdentityState, svid_pem: str) -> None:
        if state.spiffe_role and not svid_pem:
            raise BadParameter(
                f"agent identity {state.name!r} carries an SVID: the request needs its "
                "public key (svid_public_key_pem)",
                hint="update mezd: older ones do not send it",
            )
        if state.spiffe_role:
            load_svid_key(svid_pem)

    async def _identity_credentials(
        self, state: AgentIdentityState, ssh_key: str, tls_pem: str, generation: int,
        renewal: str,
    ) -> pb.AgentIdentityCredentials:  # fmt: skip
        return await self._issuer.identity_credentials(
            name=state.name,
            agent_id=state.agent_id,
            incarnation=state.incarnation,
            ttl=state.ttl,
            checker=AccessChecker(await self._roles.get_many(state.roles), state.logins),
            ssh_key_line=ssh_key,
            tls_pem=tls_pem,
            generation=generation,
            renewal_token=renewal,
        )

    async def _pending_bootstrap(
        self, text: str, keys: str
    ) -> tuple[Item, AgentIdentityState, bool]:
        """The identity a bootstrap token may still bootstrap, and whether this is the
        same bootstrap again (the token spent on these keys, no renewal since: its reply
        was lost); NotAuthenticated for any other token, AccessDenied if locked."""
        token = parse_token(text, "bootstrap token")
        owner = await self._store.find_by_bootstrap(token.name)
        if owner is None:
            raise NotAuthenticated(BOOTSTRAP_FAILED)
        try:
            item, state = await self._store.get_item(owner[0])
        except NotFound:
            raise NotAuthenticated(BOOTSTRAP_FAILED) from None
        now = self._clock.now()
        pending, answered = state.bootstrap, state.answered
        first = pending is not None and pending.redeemable(token, now) and state.generation == 0
        again = (
            answered is not None
            and answered.redeemable(token, now)
            and state.generation == 1
            and hmac.compare_digest(state.answered_keys, keys)
        )
        if state.incarnation != owner[1] or not (first or again):
            raise NotAuthenticated(BOOTSTRAP_FAILED)
        lock = self._lock_of(state)
        if lock is not None:
            raise AccessDenied(f"access denied: {lock.message()}")
        return item, state, again

    async def bootstrap_agent_identity(
        self, request: pb.BootstrapAgentIdentityRequest, ctx: CallContext
    ) -> pb.BootstrapAgentIdentityResponse:
        try:
            # Keys are checked before the one-time token is spent.
            parse_public_key(request.ssh_public_key)
            load_tls_public_key(request.tls_public_key_pem)
            keys = keys_fingerprint(request.ssh_public_key, request.tls_public_key_pem,
                                    request.svid_public_key_pem)  # fmt: skip
            item, state, again = await self._pending_bootstrap(request.token, keys)
            self._check_svid_key(state, request.svid_public_key_pem)
            renewal = new_token().text
            fresh = replace(
                state, generation=1, renewal_hash=_hash(renewal),
                last_renewed=self._clock.now(), bootstrap=None,
                answered=state.answered or state.bootstrap, answered_keys=keys,
            )  # fmt: skip
            creds = await self._credentials(
                state, request.ssh_public_key, request.tls_public_key_pem, 1, renewal,
                request.svid_public_key_pem,
            )  # fmt: skip
            record = AgentRecord(
                id=state.agent_id, kind=AgentKind.BOT, name=state.name, created=self._clock.now(),
                roles=state.roles, incarnation=state.incarnation,
            )  # fmt: skip
            try:
                # Spent exactly once: only one writer finds the state as it was read; the
                # token's index stays until it expires, for a bootstrap run again.
                await self._store.replace(item, fresh, Put(record.item()))
            except CompareFailed:
                raise NotAuthenticated(BOOTSTRAP_FAILED) from None
            failpoint("bootstrap.committed")
        except MeziteError as err:
            self._audit.emit(
                "agent_identity.bootstrap", success=False, reason=err.message, peer=ctx.peer_addr
            )
            raise
        self._audit.emit(
            "agent_identity.bootstrap", user=state.name, generation=1, retry=again,
            peer=ctx.peer_addr,
        )  # fmt: skip
        return pb.BootstrapAgentIdentityResponse(credentials=creds)

    async def renew_agent_identity(
        self, request: pb.RenewAgentIdentityRequest, ctx: CallContext
    ) -> pb.RenewAgentIdentityResponse:
        principal = ctx.principal
        if principal.agent_kind != AgentKind.BOT:
            raise AccessDenied("this call is for agent identities")
        name = principal.identity
        try:
            item, state = await self._store.get_item(name)
        except NotFound:
            raise NotAuthenticated(RENEWAL_REFUSED) from None
        if state.incarnation != principal.incarnation:
            # A deleted incarnation's credentials: refused, and the living one untouched.
            raise NotAuthenticated(RENEWAL_REFUSED)
        token_ok = bool(state.renewal_hash) and hmac.compare_digest(
            _hash(request.renewal_token), state.renewal_hash
        )
        if not token_ok or request.generation != state.generation:
            await self._lock_for_mismatch(state, request.generation, "renewal token or generation")
            raise NotAuthenticated(RENEWAL_REFUSED)
        await self._precheck(state, request.ssh_public_key, request.tls_public_key_pem)
        self._check_svid_key(state, request.svid_public_key_pem)
        renewal = new_token().text
        fresh = replace(
            state, generation=state.generation + 1, renewal_hash=_hash(renewal),
            last_renewed=self._clock.now(), answered=None, answered_keys="",
        )  # fmt: skip
        try:
            await self._store.replace(item, fresh)
        except CompareFailed:
            # Someone renewed with the same credentials at the same moment: two holders.
            await self._lock_for_mismatch(state, request.generation, "concurrent renewal")
            raise NotAuthenticated(RENEWAL_REFUSED) from None
        creds = await self._credentials(
            state, request.ssh_public_key, request.tls_public_key_pem, fresh.generation, renewal,
            request.svid_public_key_pem,
        )  # fmt: skip
        self._audit.emit("agent_identity.renew", user=name, generation=fresh.generation)
        return pb.RenewAgentIdentityResponse(credentials=creds)

    async def _precheck(self, state: AgentIdentityState, ssh_key: str, tls_pem: str) -> None:
        """What could make signing fail, checked before a generation is spent."""
        parse_public_key(ssh_key)
        load_tls_public_key(tls_pem)
        checker = AccessChecker(await self._roles.get_many(state.roles), state.logins)
        validate_principals(checker.logins())

    async def _lock_for_mismatch(self, state: AgentIdentityState, presented: int, why: str) -> None:
        """Two holders of one incarnation's credentials: lock that incarnation (not the
        name, so a re-created identity starts clean) until an admin looks."""
        lock = new_lock(
            LockTarget(agent_identity=state.name, incarnation=state.incarnation),
            reason=f"renewal generation mismatch (expected {state.generation}, presented "
            f"{presented}): the credentials may have been copied",
            created_by=SYSTEM,
            now=self._clock.now(),
        )
        await self._locks.add(lock)
        audit_lock_created(self._audit, lock, SYSTEM)
        self._audit.emit(
            "agent_identity.generation_mismatch",
            user=state.name,
            expected_generation=state.generation,
            presented_generation=presented,
            reason=why,
        )
