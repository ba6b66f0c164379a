"""Agent records: every holder of an X.509 client certificate (nodes, proxies, agent
identities, the local admin) has one, keyed by the agent id its certificate names. A
certificate alone is not enough to call the API: its agent must still be registered (and
not locked, which the guard checks against the locks in force), so deleting an agent cuts
it off at once, before its certificate expires (through another auth server on the same
PostgreSQL: once the change feed brings the deletion, RFD 0014). Agent ids name one
incarnation (a node's random id, ``bot.<name>.<incarnation>``): one deleted is never
registered again."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from proto.errors import AlreadyExists, CompareFailed, NotAuthenticated, NotFound
from proto.kinds import AgentKind
from server.auth.rpc.guard import Principal, PrincipalKind
from server.backend import Backend, Condition, Delete, Item, Put, prefix_range
from server.backend.atomic import Action
from server.backend.mirror import Reads

AGENTS_PREFIX = "agents/"
# A node's name, claimed in the same write that records the node, so that of concurrent
# joins under one new name exactly one commits (the catalog check alone is in memory).
NODE_NAMES_PREFIX = "agent_names/node/"


def name_claim(record: AgentRecord) -> tuple[list[Condition], list[Action]]:
    """The condition and write that claim ``record``'s name (nodes only; proxies may
    share a name)."""
    if record.kind != AgentKind.NODE:
        return [], []
    key = NODE_NAMES_PREFIX + record.name
    return [Condition.absent(key)], [Put(Item(key=key, value=record.id.encode()))]


AGENT_KINDS = frozenset(AgentKind)


@dataclass(frozen=True)
class AgentRecord:
    id: str
    kind: AgentKind
    name: str
    created: float
    labels: dict[str, str] = field(default_factory=dict)
    roles: tuple[str, ...] = ()
    # A proxy's advertised HOST:PORTs, the names its renewed certificates carry again.
    addrs: tuple[str, ...] = ()
    # An agent identity's incarnation (a node's or proxy's id is its own incarnation).
    incarnation: str = ""
    # How a node or proxy joined, so that a retry of that very join (auth committed it,
    # then the reply was lost) is answered again rather than refused: the join token's
    # name, its secret's hash and expiry, and a fingerprint of the keys it certified.
    join_token: str = ""
    join_hash: str = ""
    join_until: float = 0.0
    join_keys: str = ""
    # An IAM join's AWS identity (the ARN STS named): the same instance joining again
    # under the same name and token gets this record back.
    join_identity: str = ""

    def encode(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    def item(self, expires: float | None = None) -> Item:
        return Item(key=AGENTS_PREFIX + self.id, value=self.encode(), expires=expires)

    @classmethod
    def decode(cls, value: bytes) -> AgentRecord:
        doc = json.loads(value)
        doc.pop("locked", None)  # before locks were resources
        doc["roles"] = tuple(doc.get("roles", ()))
        doc["addrs"] = tuple(doc.get("addrs", ()))
        doc["kind"] = AgentKind(doc["kind"])
        return cls(**doc)


class AgentStore:
    def __init__(self, backend: Backend, reads: Reads | None = None) -> None:
        self._backend = backend
        self._reads: Reads = reads or backend  # the guard's lookup (a mirror on auth)

    async def get(self, agent_id: str) -> AgentRecord:
        return AgentRecord.decode((await self._backend.get(AGENTS_PREFIX + agent_id)).value)

    async def create(self, record: AgentRecord) -> None:
        """Record a new agent (and claim a node's name); AlreadyExists if a node of that
        name was recorded first."""
        conditions, claims = name_claim(record)
        try:
            await self._backend.atomic_write(
                [Condition.absent(AGENTS_PREFIX + record.id), *conditions],
                [Put(record.item()), *claims],
            )
        except CompareFailed:
            raise AlreadyExists(f"a {record.kind} named {record.name!r} is already registered",
                                hint="pick another --name") from None  # fmt: skip

    async def name_taken(self, name: str) -> bool:
        try:
            await self._backend.get(NODE_NAMES_PREFIX + name)
        except NotFound:
            return False
        return True

    async def put(self, record: AgentRecord, expires: float | None = None) -> None:
        await self._backend.put(record.item(expires))

    async def replace(self, old: AgentRecord, new: AgentRecord) -> None:
        """Write ``new`` over ``old`` if it is still there; NotFound once it is removed
        (a removal between the read and this write wins)."""
        key = AGENTS_PREFIX + old.id
        try:
            await self._backend.atomic_write([Condition(key)], [Put(new.item())])
        except CompareFailed:
            raise NotFound(f"{old.kind} {old.name!r} was removed") from None

    async def delete(self, agent_id: str) -> None:
        await self._backend.delete(AGENTS_PREFIX + agent_id)

    async def remove(self, record: AgentRecord, *also: Action) -> None:
        """Delete ``record`` and write ``also`` (the lock its removal implies) together;
        NotFound if it is already gone."""
        key = AGENTS_PREFIX + record.id
        names = [Delete(NODE_NAMES_PREFIX + record.name)] if record.kind == AgentKind.NODE else []
        try:
            await self._backend.atomic_write([Condition(key)], [Delete(key), *names, *also])
        except CompareFailed:
            raise NotFound(f"{record.kind} {record.name!r} is already removed") from None

    async def list(self) -> list[AgentRecord]:
        items = await self._backend.get_range(*prefix_range(AGENTS_PREFIX))
        return [AgentRecord.decode(item.value) for item in items]

    async def resolve_agent(self, agent_id: str, cert_kind: str) -> Principal:
        """The guard's agent lookup: registered, and of the kind the CA certified. Every
        failure is the same NotAuthenticated."""
        try:
            record = AgentRecord.decode((await self._reads.get(AGENTS_PREFIX + agent_id)).value)
        except NotFound:
            record = None
        if record is None or record.kind != cert_kind:
            raise NotAuthenticated("unknown, removed or mismatched agent identity")
        return Principal(
            kind=PrincipalKind.AGENT,
            name=record.id,
            agent_kind=record.kind,
            roles=record.roles,
            incarnation=record.incarnation,
            identity=record.name,
        )
