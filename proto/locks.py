"""Locks: what they target and whom they refuse, decided the same way by auth, nodes and
the proxy.

A lock targets exactly one of: a user, a node, an agent identity, an OS login or a
role. User and agent-identity locks may be narrowed to one incarnation (the immutable id
a thing gets at creation), which is what deletions and resets make: a re-created account
of the same name is a different incarnation and is not locked.

A ``Subject`` is whoever is trying to get in, described by what the deciding party
knows: auth knows a caller's kind, name, incarnation and roles; a node reads the same
from a user certificate and adds the login asked for and itself; the proxy adds the
node being reached.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING

from proto.errors import BadParameter

if TYPE_CHECKING:
    from proto.v1 import auth_pb2

TARGET_KINDS = ("user", "node", "agent_identity", "login", "role")
LOCKING_MODES = ("best_effort", "strict")
DEFAULT_LOCKING_MODE = "best_effort"
MAX_REASON_CHARS = 256
MAX_TARGET_CHARS = 255


@dataclass(frozen=True)
class LockTarget:
    user: str = ""
    node: str = ""
    agent_identity: str = ""
    login: str = ""
    role: str = ""
    incarnation: str = ""

    def kind(self) -> str:
        kinds = [k for k in TARGET_KINDS if getattr(self, k)]
        if len(kinds) != 1:
            raise BadParameter(
                "a lock targets exactly one of: user, node, agent identity, login, role"
            )
        return kinds[0]

    def validate(self) -> LockTarget:
        kind = self.kind()
        value = str(getattr(self, kind))
        if len(value) > MAX_TARGET_CHARS or any(not c.isprintable() or c.isspace() for c in value):
            raise BadParameter(f"invalid lock target {kind} {value[:80]!r}")
        if self.incarnation and kind not in ("user", "agent_identity"):
            raise BadParameter("only user and agent identity locks name an incarnation")
        if len(self.incarnation) > 64:
            raise BadParameter("invalid incarnation")
        return self

    def describe(self) -> str:
        kind = self.kind()
        text = f"{kind.replace('_', '-')}={getattr(self, kind)}"
        return f"{text} (incarnation {self.incarnation[:8]})" if self.incarnation else text


@dataclass(frozen=True)
class Lock:
    name: str
    target: LockTarget
    reason: str
    created: float
    created_by: str
    expires: float = 0.0  # 0: until removed

    def in_force(self, now: float) -> bool:
        return not self.expires or now < self.expires

    def message(self) -> str:
        reason = f": {self.reason}" if self.reason else ""
        return f"locked by {self.created_by} ({self.target.describe()}){reason}"


@dataclass(frozen=True)
class Subject:
    """Whoever is trying to get in. ``kind`` is "user", "agent_identity", "node" or
    "proxy"; for the last two ``name`` is the agent id."""

    kind: str
    name: str
    incarnation: str = ""
    roles: tuple[str, ...] = ()
    login: str = ""  # the OS login asked for, where one is
    node: str = ""  # the node being reached, where one is


def lock_applies(lock: Lock, subject: Subject, now: float) -> bool:
    if not lock.in_force(now):
        return False
    target = lock.target
    if target.user or target.agent_identity:
        kind, name = (
            ("user", target.user) if target.user else ("agent_identity", target.agent_identity)
        )
        if subject.kind != kind or subject.name != name:
            return False
        return not target.incarnation or target.incarnation == subject.incarnation
    if target.node:
        if target.node == subject.node:
            return True
        return subject.kind in ("node", "proxy") and subject.name == target.node
    if target.login:
        return bool(subject.login) and subject.login == target.login
    if target.role:
        return target.role in subject.roles
    return False


@dataclass(frozen=True)
class LockSet:
    """The locks in force at one moment, as one party knows them, indexed by target so
    that a check (auth makes one per call) costs a few dictionary lookups however many
    locks deletions have left."""

    locks: tuple[Lock, ...] = ()
    locking_mode: str = DEFAULT_LOCKING_MODE
    max_staleness: float = 300.0
    _index: dict[tuple[str, str], list[Lock]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        for lock in self.locks:
            kind = lock.target.kind()
            self._index.setdefault((kind, str(getattr(lock.target, kind))), []).append(lock)

    def _candidates(self, subject: Subject) -> list[Lock]:
        keys = [(subject.kind, subject.name), ("login", subject.login), ("node", subject.node)]
        if subject.kind in ("node", "proxy"):
            keys.append(("node", subject.name))
        keys += [("role", role) for role in subject.roles]
        found: list[Lock] = []
        for key in keys:
            found += self._index.get(key, ())
        return sorted(found, key=lambda lock: (lock.created, lock.name))

    def find(self, subject: Subject, now: float) -> Lock | None:
        """The oldest lock refusing ``subject``, or None."""
        return next(
            (lk for lk in self._candidates(subject) if lock_applies(lk, subject, now)), None
        )

    def locked_nodes(self, now: float) -> frozenset[str]:
        """The ids of the nodes a lock in force targets."""
        return frozenset(lk.target.node for lk in self.locks if lk.target.node and lk.in_force(now))

    def in_force(self, now: float) -> list[Lock]:
        return [lock for lock in self.locks if lock.in_force(now)]


# --- the wire form ------------------------------------------------------------------


def target_to_proto(target: LockTarget) -> auth_pb2.LockTarget:
    from proto.v1 import auth_pb2

    return auth_pb2.LockTarget(**asdict(target))


def target_from_proto(msg: auth_pb2.LockTarget) -> LockTarget:
    """The message's fields and the dataclass's are the same names (a test checks)."""
    return LockTarget(**{f.name: getattr(msg, f.name) for f in fields(LockTarget)})


def lock_to_proto(lock: Lock) -> auth_pb2.Lock:
    from proto.v1 import auth_pb2

    return auth_pb2.Lock(
        name=lock.name,
        target=target_to_proto(lock.target),
        reason=lock.reason,
        created=lock.created,
        created_by=lock.created_by,
        expires=lock.expires,
    )


def lock_from_proto(msg: auth_pb2.Lock) -> Lock:
    return Lock(
        name=msg.name,
        target=target_from_proto(msg.target),
        reason=msg.reason[:MAX_REASON_CHARS],
        created=msg.created,
        created_by=msg.created_by,
        expires=msg.expires,
    )


def lock_set_from_proto(msg: auth_pb2.WatchLocksResponse) -> LockSet:
    mode = msg.locking_mode if msg.locking_mode in LOCKING_MODES else "strict"
    locks: Iterable[Lock] = (lock_from_proto(lock) for lock in msg.locks)
    return LockSet(tuple(locks), locking_mode=mode, max_staleness=msg.max_staleness_seconds)
