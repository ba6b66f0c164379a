"""Agent identities (bots): machines that are not nodes and get short-lived SSH
credentials without a person. Kept apart from node joins: their own keyspace, their own
one-time bootstrap tokens, and renewal with theft detection.

State per identity (``agent_identities/<name>``): roles, certificate TTL, its
incarnation, the current generation, the hash of the one renewal token that may be used
next, and the pending bootstrap token. Its X.509 certificates name the agent id
``bot.<name>.<incarnation>``, so a re-created identity of the same name is another
agent to the guard; and everything pending (bootstrap and renewal tokens) lives in the
state itself, gone with it. A renewal must present both token and generation; anything
else means an old token was replayed or two holders share the credentials, and the
identity is locked until an admin looks into it."""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass

from proto.clock import Clock
from proto.errors import AlreadyExists, CompareFailed, NotFound
from proto.locks import LockTarget
from server.auth.stores.incarnations import INCARNATION_RE, legacy_incarnation
from server.auth.stores.secret_tokens import PendingToken
from server.backend import Backend, Condition, Delete, Item, Put, prefix_range
from server.backend.atomic import Action

IDENTITIES_PREFIX = "agent_identities/"
BOOTSTRAP_PREFIX = "bootstrap_tokens/"
BOT_ID_PREFIX = "bot."
BOOTSTRAP_FAILED = "invalid, expired or already used bootstrap token"


def bot_agent_id(name: str, incarnation: str) -> str:
    return f"{BOT_ID_PREFIX}{name}.{incarnation}"


def parse_bot_agent_id(agent_id: str) -> tuple[str, str] | None:
    """(name, incarnation) of a bot's agent id, or None if it is not one."""
    stem, _, incarnation = agent_id.removeprefix(BOT_ID_PREFIX).rpartition(".")
    if not agent_id.startswith(BOT_ID_PREFIX) or not stem:
        return None
    return (stem, incarnation) if INCARNATION_RE.fullmatch(incarnation) else None


@dataclass(frozen=True)
class AgentIdentityState:
    name: str
    roles: tuple[str, ...]
    ttl: float
    created: float
    logins: tuple[str, ...] = ()
    incarnation: str = ""
    generation: int = 0
    renewal_hash: str = ""
    last_renewed: float = 0.0
    bootstrap: PendingToken | None = None
    spiffe_role: str = ""  # an SVID for spiffe://TD/role/<spiffe_role>/<name> with each renewal
    # The spent bootstrap token and the keys it certified, until the first renewal: the
    # same bootstrap run again (its reply was lost) is answered again, not refused.
    answered: PendingToken | None = None
    answered_keys: str = ""

    @property
    def agent_id(self) -> str:
        return bot_agent_id(self.name, self.incarnation)

    def encode(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def decode(cls, value: bytes) -> AgentIdentityState:
        doc = json.loads(value)
        doc.pop("locked", None)  # before locks were resources (migrated at start)
        doc["roles"] = tuple(doc["roles"])
        doc["logins"] = tuple(doc.get("logins", ()))
        pending = doc.get("bootstrap")
        doc["bootstrap"] = PendingToken(**pending) if pending else None
        answered = doc.get("answered")
        doc["answered"] = PendingToken(**answered) if answered else None
        if not doc.get("incarnation"):
            doc["incarnation"] = legacy_incarnation(doc["name"], doc["created"])
        return cls(**doc)

    def item(self) -> Item:
        return Item(key=IDENTITIES_PREFIX + self.name, value=self.encode())


def bootstrap_index(state: AgentIdentityState) -> Item:
    """Finds the identity from its bootstrap token's public name."""
    assert state.bootstrap is not None
    doc = {"identity": state.name, "incarnation": state.incarnation}
    return Item(
        key=BOOTSTRAP_PREFIX + state.bootstrap.name,
        value=json.dumps(doc).encode(),
        expires=state.bootstrap.expires,
    )


def dropped_bootstrap(state: AgentIdentityState) -> list[Action]:
    tokens = [t for t in (state.bootstrap, state.answered) if t is not None]
    return [Delete(BOOTSTRAP_PREFIX + t.name) for t in tokens]


class AgentIdentityStore:
    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    async def create(self, state: AgentIdentityState, *also: Action) -> None:
        try:
            await self._backend.atomic_write(
                [Condition.absent(IDENTITIES_PREFIX + state.name)], [Put(state.item()), *also]
            )
        except CompareFailed:
            raise AlreadyExists(f"agent identity {state.name!r} already exists") from None

    async def get_item(self, name: str) -> tuple[Item, AgentIdentityState]:
        try:
            item = await self._backend.get(IDENTITIES_PREFIX + name)
        except NotFound:
            raise NotFound(f"agent identity {name!r} not found") from None
        return item, AgentIdentityState.decode(item.value)

    async def get(self, name: str) -> AgentIdentityState:
        return (await self.get_item(name))[1]

    async def replace(self, item: Item, state: AgentIdentityState, *also: Action) -> None:
        """Write ``state`` over ``item`` as read, with ``also``; CompareFailed if it
        changed since."""
        await self._backend.atomic_write([Condition.unchanged(item)], [Put(state.item()), *also])

    async def remove(self, item: Item, *also: Action) -> None:
        await self._backend.atomic_write([Condition.unchanged(item)], [Delete(item.key), *also])

    async def list(self) -> list[AgentIdentityState]:
        items = await self._backend.get_range(*prefix_range(IDENTITIES_PREFIX))
        return [AgentIdentityState.decode(item.value) for item in items]

    async def find_by_bootstrap(self, token_name: str) -> tuple[str, str] | None:
        """(identity, incarnation) a bootstrap token was issued to, while it lives (the
        index outlives the bootstrap, so a lost reply can be answered again)."""
        try:
            item = await self._backend.get(BOOTSTRAP_PREFIX + token_name)
        except NotFound:
            return None
        doc = json.loads(item.value)
        return str(doc["identity"]), str(doc["incarnation"])


async def migrate_legacy_locks(backend: Backend, clock: Clock) -> int:
    """Identities locked before locks were resources carried ``locked: true`` in their
    state: each becomes a lock on that incarnation, in the same write that drops the
    flag (so it happens once, and an admin's later unlock sticks)."""
    from server.auth.stores.locks import SYSTEM, lock_item, new_lock

    migrated = 0
    for item in await backend.get_range(*prefix_range(IDENTITIES_PREFIX)):
        doc = json.loads(item.value)
        if not doc.pop("locked", False):
            continue
        state = AgentIdentityState.decode(item.value)
        lock = new_lock(
            LockTarget(agent_identity=state.name, incarnation=state.incarnation),
            reason=f"agent identity {state.name} was locked before this upgrade",
            created_by=SYSTEM,
            now=clock.now(),
        )
        rewritten = Item(key=item.key, value=json.dumps(doc, sort_keys=True).encode())
        with contextlib.suppress(CompareFailed):
            await backend.atomic_write(
                [Condition.unchanged(item)], [Put(rewritten), Put(lock_item(lock))]
            )
            migrated += 1
    return migrated
