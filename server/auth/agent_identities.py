"""Agent identities (bots): machines that are not nodes and get short-lived SSH
credentials without a person. Kept apart from node joins: their own keyspace, their own
one-time bootstrap tokens, and renewal with theft detection.

State per identity (``agent_identities/<name>``): roles, certificate TTL, the current
generation and the hash of the one renewal token that may be used next. A renewal must
present both; anything else means an old token was replayed or two holders share the
credentials, and the identity is locked until an admin looks into it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace

from proto.clock import Clock
from proto.errors import AlreadyExists, CompareFailed, NotAuthenticated, NotFound
from server.auth.secret_tokens import SecretToken, new_token, parse_token, secret_matches
from server.backend import Backend, Item, prefix_range

IDENTITIES_PREFIX = "agent_identities/"
BOOTSTRAP_PREFIX = "bootstrap_tokens/"
BOT_ID_PREFIX = "bot."
BOOTSTRAP_FAILED = "invalid, expired or already used bootstrap token"


def bot_agent_id(name: str) -> str:
    return BOT_ID_PREFIX + name


@dataclass(frozen=True)
class AgentIdentityState:
    name: str
    roles: tuple[str, ...]
    ttl: float
    created: float
    logins: tuple[str, ...] = ()
    generation: int = 0
    renewal_hash: str = ""
    last_renewed: float = 0.0
    locked: bool = False

    def encode(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def decode(cls, value: bytes) -> AgentIdentityState:
        doc = json.loads(value)
        doc["roles"] = tuple(doc["roles"])
        doc["logins"] = tuple(doc.get("logins", ()))
        return cls(**doc)


class AgentIdentityStore:
    def __init__(self, backend: Backend, clock: Clock) -> None:
        self._backend = backend
        self._clock = clock

    async def create(self, state: AgentIdentityState) -> None:
        try:
            await self._backend.create(
                Item(key=IDENTITIES_PREFIX + state.name, value=state.encode())
            )
        except AlreadyExists:
            raise AlreadyExists(f"agent identity {state.name!r} already exists") from None

    async def get_item(self, name: str) -> tuple[Item, AgentIdentityState]:
        try:
            item = await self._backend.get(IDENTITIES_PREFIX + name)
        except NotFound:
            raise NotFound(f"agent identity {name!r} not found") from None
        return item, AgentIdentityState.decode(item.value)

    async def get(self, name: str) -> AgentIdentityState:
        return (await self.get_item(name))[1]

    async def swap(self, item: Item, state: AgentIdentityState) -> None:
        """Compare-and-swap: CompareFailed when someone changed it since ``item``."""
        await self._backend.compare_and_swap(item, Item(key=item.key, value=state.encode()))

    async def update(self, name: str, **changes: object) -> AgentIdentityState:
        for _ in range(20):
            item, state = await self.get_item(name)
            fresh = replace(state, **changes)  # type: ignore[arg-type]
            try:
                await self.swap(item, fresh)
            except CompareFailed:
                continue
            return fresh
        raise CompareFailed(f"agent identity {name!r} is changing too fast; try again")

    async def list(self) -> list[AgentIdentityState]:
        items = await self._backend.get_range(*prefix_range(IDENTITIES_PREFIX))
        return [AgentIdentityState.decode(item.value) for item in items]

    async def delete(self, name: str) -> None:
        try:
            await self._backend.delete(IDENTITIES_PREFIX + name)
        except NotFound:
            raise NotFound(f"agent identity {name!r} not found") from None

    # --- bootstrap tokens ---------------------------------------------------------------

    async def new_bootstrap_token(self, name: str, ttl: float) -> tuple[SecretToken, float]:
        token = new_token()
        expires = self._clock.now() + ttl
        doc = {"identity": name, "hash": token.secret_hash}
        await self._backend.create(
            Item(key=BOOTSTRAP_PREFIX + token.name, value=json.dumps(doc).encode(), expires=expires)
        )
        return token, expires

    async def consume_bootstrap_token(self, text: str) -> str:
        """The identity the token bootstraps; spent exactly once under any race."""
        try:
            token = parse_token(text, "bootstrap token")
            item = await self._backend.get(BOOTSTRAP_PREFIX + token.name)
        except (NotFound, NotAuthenticated):
            raise NotAuthenticated(BOOTSTRAP_FAILED) from None
        doc = json.loads(item.value)
        if not secret_matches(token, doc["hash"]):
            raise NotAuthenticated(BOOTSTRAP_FAILED)
        try:
            await self._backend.compare_and_delete(item)
        except (CompareFailed, NotFound):
            raise NotAuthenticated(BOOTSTRAP_FAILED) from None
        return str(doc["identity"])

    async def drop_bootstrap_tokens(self, name: str) -> None:
        for item in await self._backend.get_range(*prefix_range(BOOTSTRAP_PREFIX)):
            if json.loads(item.value)["identity"] == name:
                try:
                    await self._backend.compare_and_delete(item)
                except (CompareFailed, NotFound):
                    continue
