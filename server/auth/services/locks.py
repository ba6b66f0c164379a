"""Lock RPCs: CreateLock, ListLocks, DeleteLock and ExportKRL (admin), WatchLocks (nodes
and proxies).

WatchLocks sends the whole set of locks in force, again whenever it changes, and at
least every ``keepalive`` seconds, so that an agent can tell a quiet stream from a dead
one: the set is small, and a whole set is idempotent where a diff would need ordering."""

from __future__ import annotations

import logging
from typing import Any

from proto.clock import Clock
from proto.errors import AccessDenied, BadParameter, NotFound
from proto.kinds import AgentKind
from proto.locks import (
    MAX_REASON_CHARS,
    LockSet,
    LockTarget,
    Subject,
    lock_to_proto,
    target_from_proto,
)
from proto.v1 import auth_pb2 as pb
from server.audit import AuditLog
from server.auth.auditing import Auditor
from server.auth.crypto.ca import Authorities
from server.auth.crypto.krl import encode_krl
from server.auth.crypto.sshcert import MAX_CERT_TTL
from server.auth.rpc.guard import validate_name
from server.auth.rpc.router import CallContext
from server.auth.stores.agents import AgentStore
from server.auth.stores.locks import CLOCK_SKEW, LockCache, LockStore, audit_lock_created, new_lock
from server.auth.stores.nodes import NodeCatalog
from server.auth.stores.roles import validate_login
from server.auth.stores.users import validate_username

log = logging.getLogger(__name__)

MAX_LOCK_TTL = 365 * 86400
# Keepalives per staleness limit, so an agent can tell a quiet stream from a dead one
# after missing a few: with the default 5 minutes, one every 100 s (at 50,000 nodes, 500
# small messages a second).
KEEPALIVES_PER_STALENESS = 3
_PAGE = 1000


def _check_reason(reason: str) -> str:
    if len(reason) > MAX_REASON_CHARS or any(not c.isprintable() for c in reason):
        raise BadParameter(f"a lock reason is at most {MAX_REASON_CHARS} printable characters")
    return reason


class LockService:
    def __init__(
        self,
        *,
        store: LockStore,
        cache: LockCache,
        agents: AgentStore,
        catalog: NodeCatalog,
        audit_log: AuditLog,
        cas: Authorities,
        auditor: Auditor,
        clock: Clock,
        locking_mode: str,
        max_staleness: float,
    ) -> None:
        self._store = store
        self._cache = cache
        self._agents = agents
        self._catalog = catalog
        self._log = audit_log
        self._cas = cas
        self._audit = auditor
        self._clock = clock
        self._mode = locking_mode
        self._max_staleness = max_staleness

    async def _node_id(self, wanted: str) -> str:
        """A node named by id, or by its name when that is unique."""
        nodes = [r for r in await self._agents.list() if r.kind == AgentKind.NODE]
        matches = [r for r in nodes if r.id == wanted] or [r for r in nodes if r.name == wanted]
        if not matches:
            raise NotFound(f"no node {wanted[:80]!r}", hint="`mezctl nodes ls` lists them")
        if len(matches) > 1:
            raise BadParameter(f"{len(matches)} nodes are named {wanted!r}; give the id")
        return matches[0].id

    async def _target(self, msg: pb.LockTarget) -> LockTarget:
        target = target_from_proto(msg).validate()
        kind = target.kind()
        if kind == "user":
            validate_username(target.user)
        elif kind == "agent_identity":
            validate_name("agent identity", target.agent_identity)
        elif kind == "role":
            validate_name("role", target.role)
        elif kind == "login":
            validate_login(target.login)
        else:
            return LockTarget(node=await self._node_id(target.node))
        return target

    async def create_lock(
        self, request: pb.CreateLockRequest, ctx: CallContext
    ) -> pb.CreateLockResponse:
        target = await self._target(request.target)
        if not 0 <= request.ttl_seconds <= MAX_LOCK_TTL:
            raise BadParameter("a lock's TTL is at most 365d (0: until removed)")
        by = ctx.principal.name
        lock = new_lock(
            target,
            reason=_check_reason(request.reason),
            created_by=by,
            now=self._clock.now(),
            ttl=float(request.ttl_seconds),
        )
        await self._store.add(lock)
        audit_lock_created(self._audit, lock, by)
        return pb.CreateLockResponse(lock=lock_to_proto(lock))

    async def list_locks(
        self, request: pb.ListLocksRequest, ctx: CallContext
    ) -> pb.ListLocksResponse:
        now = self._clock.now()
        return pb.ListLocksResponse(
            locks=[lock_to_proto(lock) for lock in await self._store.list() if lock.in_force(now)]
        )

    async def delete_lock(
        self, request: pb.DeleteLockRequest, ctx: CallContext
    ) -> pb.DeleteLockResponse:
        if not request.name or len(request.name) > 64:
            raise BadParameter("name the lock to remove (`mezctl lock ls` shows names)")
        lock = await self._store.remove(request.name)
        self._audit.emit(
            "lock.delete", user=ctx.principal.name, lock=lock.name, target=lock.target.describe()
        )
        return pb.DeleteLockResponse()

    # --- nodes and proxies -----------------------------------------------------------------

    def _view(self) -> pb.WatchLocksResponse:
        now = self._clock.now()
        return pb.WatchLocksResponse(
            locks=[lock_to_proto(lock) for lock in self._cache.snapshot().in_force(now)],
            locking_mode=self._mode,
            max_staleness_seconds=self._max_staleness,
        )

    async def _still_registered(self, principal: Any) -> bool:
        if principal.agent_kind == AgentKind.NODE:
            return self._catalog.get(principal.name) is not None
        try:
            await self._agents.get(principal.name)
        except NotFound:
            return False
        return True

    async def watch_locks(self, stream: object, ctx: CallContext) -> None:
        principal = ctx.principal
        if principal.agent_kind not in (AgentKind.NODE, AgentKind.PROXY):
            raise AccessDenied("this call is for nodes and proxies")
        if await ctx.recv() is None:
            raise BadParameter("missing request message")
        keepalive = self._max_staleness / KEEPALIVES_PER_STALENESS
        while True:
            version = self._cache.version
            await ctx.send(self._view())
            if not await self._still_registered(principal):
                # It has just been sent the set that locks it; a reconnect is refused.
                log.info("%s %s was removed; ending its lock stream", principal.agent_kind,
                         principal.name)  # fmt: skip
                return
            await self._cache.wait_changed(version, keepalive)

    # --- agentless sshd ---------------------------------------------------------------------

    async def export_krl(
        self, request: pb.ExportKRLRequest, ctx: CallContext
    ) -> pb.ExportKRLResponse:
        """Every user certificate still valid whose holder a lock refuses, from the audit
        log's record of issued certificates (cert.create), for sshd's RevokedKeys."""
        now = self._clock.now()
        locks = self._cache.snapshot()
        serials: set[int] = set()
        key_ids: set[str] = set()
        page = ""
        while True:
            events, page = await self._log.search(
                start=now - MAX_CERT_TTL - CLOCK_SKEW, end=now + 1, types=["cert.create"],
                user="", limit=_PAGE, page_token=page,
            )  # fmt: skip
            for event in events:
                fields = event.fields
                serial = fields.get("serial")
                if isinstance(serial, int) and revoked(fields, event.user, locks, now):
                    serials.add(serial)
                    key_ids.add(str(fields["key_id"]))
            if not page:
                break
        krl = encode_krl(
            self._cas.user_ssh.public_blob, serials, key_ids, version=int(now),
            generated=int(now), comment=f"Mezite cluster {self._cas.cluster_name}",
        )  # fmt: skip
        self._audit.emit("krl.export", user=ctx.principal.name, revoked=len(serials))
        return pb.ExportKRLResponse(krl=krl, revoked=len(serials))


def revoked(fields: Any, user: str, locks: LockSet, now: float) -> bool:
    """Whether a cert.create event's certificate is still valid and held by someone a
    lock refuses: its holder, a role of its, or any login it names (a KRL cannot revoke
    one login of a certificate, so it revokes the certificate)."""
    kind = str(fields.get("cert_type", "user"))
    if kind not in ("user", "agent_identity") or "serial" not in fields:
        return False
    valid_before = fields.get("valid_before")
    if not isinstance(valid_before, int | float) or valid_before <= now:
        return False
    roles = tuple(str(r) for r in fields.get("roles") or ())
    holder = Subject(kind, user, str(fields.get("incarnation", "")), roles)
    if locks.find(holder, now) is not None:
        return True
    logins = [str(p) for p in fields.get("principals") or ()]
    return any(locks.find(Subject(kind, "", login=login), now) for login in logins)
