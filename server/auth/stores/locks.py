"""Locks in the backend (``locks/<name>``, so every auth server on the store sees them),
mirrored in memory by a watch so that checking one costs no backend read.

The cache is what the guard consults on every call and what ``WatchLocks`` streams to
nodes and proxies; ``changed`` wakes those streams when the set moves.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from dataclasses import asdict

from proto.clock import Clock
from proto.errors import AccessDenied, AlreadyExists, CompareFailed, MeziteError, NotFound
from proto.kinds import AgentKind
from proto.locks import Lock, LockSet, LockTarget, Subject
from server.auth.auditing import Auditor
from server.auth.rpc.guard import Principal, PrincipalKind
from server.backend import Backend, EventType, Item, prefix_range

log = logging.getLogger(__name__)

LOCKS_PREFIX = "locks/"
# Nodes' clocks may trail auth's: an automatic lock outlives the certificates it covers
# by this much.
CLOCK_SKEW = 300.0
SYSTEM = "system"


def encode_lock(lock: Lock) -> bytes:
    return json.dumps(asdict(lock), sort_keys=True).encode()


def decode_lock(value: bytes) -> Lock:
    doc = json.loads(value)
    return Lock(**{**doc, "target": LockTarget(**doc["target"])})


def new_lock(
    target: LockTarget, *, reason: str, created_by: str, now: float, ttl: float = 0.0
) -> Lock:
    return Lock(
        name=secrets.token_hex(8),  # short enough to type into `mezctl lock rm`
        target=target.validate(),
        reason=reason,
        created=now,
        created_by=created_by,
        expires=now + ttl if ttl else 0.0,
    )


def lock_item(lock: Lock) -> Item:
    """The backend item of ``lock``; the backend drops it when it lapses."""
    return Item(key=LOCKS_PREFIX + lock.name, value=encode_lock(lock), expires=lock.expires or None)


def audit_lock_created(auditor: Auditor, lock: Lock, by: str) -> None:
    auditor.emit(
        "lock.create", user=by, lock=lock.name, target=lock.target.describe(),
        reason=lock.reason, expires=lock.expires,
    )  # fmt: skip


class LockStore:
    """Locks as backend items (the cache below reads them back through a watch)."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    async def add(self, lock: Lock) -> None:
        try:
            await self._backend.create(lock_item(lock))
        except AlreadyExists:
            raise AlreadyExists(f"a lock named {lock.name!r} exists") from None

    async def remove(self, name: str) -> Lock:
        try:
            item = await self._backend.get(LOCKS_PREFIX + name)
            await self._backend.compare_and_delete(item)
        except (NotFound, CompareFailed):  # CompareFailed: removed by someone else just now
            raise NotFound(
                f"no lock named {name[:80]!r}", hint="`mezctl lock ls` lists them"
            ) from None
        return decode_lock(item.value)

    async def list(self) -> list[Lock]:
        items = await self._backend.get_range(*prefix_range(LOCKS_PREFIX))
        return sorted((decode_lock(i.value) for i in items), key=lambda lk: (lk.created, lk.name))


def subject_of(principal: Principal) -> Subject | None:
    """Who a caller is, for lock matching; None for those no lock can refuse (anonymous
    callers, and the local admin identity, so that locks can always be lifted)."""
    if principal.kind == PrincipalKind.USER:
        return Subject("user", principal.name, principal.incarnation, principal.roles)
    if principal.kind != PrincipalKind.AGENT or principal.agent_kind is None or principal.is_admin:
        return None
    if principal.agent_kind == AgentKind.BOT:
        return Subject("agent_identity", principal.identity, principal.incarnation, principal.roles)
    return Subject(principal.agent_kind, principal.name)


class LockCache:
    """Every lock in force, kept current by a watch on the backend."""

    def __init__(self, backend: Backend, clock: Clock) -> None:
        self._backend = backend
        self._clock = clock
        self._locks: dict[str, Lock] = {}
        self._task: asyncio.Task[None] | None = None
        self.version = 0
        self._changed = asyncio.Event()
        self._set: LockSet | None = None  # built once per version

    async def start(self) -> None:
        ready = asyncio.Event()
        self._task = asyncio.create_task(self._watch(ready), name="lock-watch")
        await ready.wait()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _bump(self) -> None:
        self._set = None
        self.version += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def _watch(self, ready: asyncio.Event) -> None:
        while True:
            try:
                async with self._backend.watch([LOCKS_PREFIX]) as watcher:
                    async for event in watcher:
                        if event.type is EventType.INIT:
                            items = await self._backend.get_range(*prefix_range(LOCKS_PREFIX))
                            self._locks = {}
                            for item in items:
                                self._remember(item)
                            ready.set()
                        elif event.type is EventType.PUT:
                            self._remember(event.item)
                        else:
                            self._locks.pop(event.item.key.removeprefix(LOCKS_PREFIX), None)
                        self._bump()
            except MeziteError as err:
                log.warning("lock watch restarted: %s", err.message)
                ready.set()
                await asyncio.sleep(1)

    def _remember(self, item: Item) -> None:
        try:
            lock = decode_lock(item.value)
        except (ValueError, TypeError, KeyError):
            log.error("ignoring malformed lock %s", item.key)
            return
        self._locks[lock.name] = lock

    async def wait_changed(self, version: int, within: float) -> None:
        """Return when the set moved past ``version``, or after ``within`` seconds."""
        if self.version != version:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await self._changed.wait()

    def snapshot(self) -> LockSet:
        """The locks held now (lapsed ones included until the backend drops them; every
        check asks whether a lock is still in force)."""
        if self._set is None:
            ordered = sorted(self._locks.values(), key=lambda lock: (lock.created, lock.name))
            self._set = LockSet(tuple(ordered))
        return self._set

    def find(self, subject: Subject) -> Lock | None:
        return self.snapshot().find(subject, self._clock.now())

    def enforce(self, principal: Principal) -> None:
        """The guard's check: AccessDenied naming the lock when one refuses the caller."""
        subject = subject_of(principal)
        if subject is None:
            return
        lock = self.find(subject)
        if lock is not None:
            raise AccessDenied(
                f"access denied: {lock.message()}",
                hint=f"an administrator can lift it with `mezctl lock rm {lock.name}`",
            )
