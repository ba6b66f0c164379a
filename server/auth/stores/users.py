"""Users: name, roles, the logins trait, an Argon2id password hash, the account's
incarnation and its one pending invite.

The incarnation is a random id made at creation (and again at a reset); sessions live
under it and certificates name it, so deleting or resetting an account ends everything
the old incarnation held. The pending invite lives in the user record itself: issuing a
new one replaces the old, and deleting the user deletes it, in the same write."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass

from proto.errors import AlreadyExists, BadParameter, CompareFailed, NotFound
from server.auth.stores.incarnations import legacy_incarnation
from server.auth.stores.roles import validate_login
from server.auth.stores.secret_tokens import PendingToken
from server.backend import Backend, Condition, Delete, Item, Put, prefix_range
from server.backend.atomic import Action
from server.backend.mirror import Reads

USERS_PREFIX = "users/"
MAX_ROLES = 32
MAX_LOGINS = 64
_USER_RE = re.compile(r"[a-z0-9_][a-z0-9._@-]{0,63}")


def validate_username(name: str) -> str:
    if not _USER_RE.fullmatch(name):
        raise BadParameter(
            f"invalid user name {name[:80]!r}",
            hint="use up to 64 lower-case letters, digits, '.', '_', '@' or '-'",
        )
    return name


@dataclass(frozen=True)
class User:
    name: str
    roles: tuple[str, ...]
    logins: tuple[str, ...]
    created: float
    password_hash: str | None = None
    incarnation: str = ""
    invite: PendingToken | None = None  # the one invite that may set the password

    def encode(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def decode(cls, value: bytes) -> User:
        doc = json.loads(value)
        doc.pop("generation", None)  # before incarnations: a counter of resets
        doc["roles"], doc["logins"] = tuple(doc["roles"]), tuple(doc["logins"])
        invite = doc.get("invite")
        doc["invite"] = PendingToken(**invite) if invite else None
        if not doc.get("incarnation"):
            doc["incarnation"] = legacy_incarnation(doc["name"], doc["created"])
        return cls(**doc)

    def item(self) -> Item:
        return Item(key=USERS_PREFIX + self.name, value=self.encode())


def validate_user_fields(name: str, roles: list[str], logins: list[str]) -> None:
    validate_username(name)
    if not roles:
        raise BadParameter("a user needs at least one role")
    if len(roles) > MAX_ROLES or len(logins) > MAX_LOGINS:
        raise BadParameter(f"at most {MAX_ROLES} roles and {MAX_LOGINS} logins")
    for login in logins:
        validate_login(login)


class UserStore:
    """Users under ``users/<name>``. ``get`` and ``find`` read through ``reads`` (a
    mirror on the auth server, server/backend/mirror.py); the ``*_item`` reads, whose
    item a compare-and-swap writes over, always read storage."""

    def __init__(self, backend: Backend, reads: Reads | None = None) -> None:
        self._backend = backend
        self._reads: Reads = reads or backend

    async def get_item(self, name: str) -> tuple[Item, User]:
        return await self._read(self._backend, name)

    async def _read(self, reads: Reads, name: str) -> tuple[Item, User]:
        try:
            item = await reads.get(USERS_PREFIX + validate_username(name))
        except NotFound:
            raise NotFound(f"user {name!r} not found") from None
        return item, User.decode(item.value)

    async def get(self, name: str) -> User:
        return (await self._read(self._reads, name))[1]

    async def find_item(self, name: str) -> tuple[Item, User] | None:
        """Like get_item, but None for a missing or malformed name (logins must not
        tell)."""
        try:
            return await self.get_item(name)
        except (NotFound, BadParameter):
            return None

    async def find(self, name: str) -> User | None:
        try:
            return await self.get(name)
        except (NotFound, BadParameter):
            return None

    async def create(self, user: User, *also: Action) -> None:
        """Store a new user, and ``also`` (its invite) in the same write."""
        try:
            await self._backend.atomic_write(
                [Condition.absent(USERS_PREFIX + user.name)], [Put(user.item()), *also]
            )
        except CompareFailed:
            raise AlreadyExists(f"user {user.name!r} already exists") from None

    async def replace(self, item: Item, user: User, *also: Action) -> None:
        """Write ``user`` over ``item`` as it was read, with ``also``; CompareFailed if
        the user changed since."""
        await self._backend.atomic_write([Condition.unchanged(item)], [Put(user.item()), *also])

    async def remove(self, item: Item, *also: Action) -> None:
        """Delete the user ``item`` holds, and ``also`` (what hangs off it), together;
        CompareFailed if the user changed since it was read."""
        await self._backend.atomic_write([Condition.unchanged(item)], [Delete(item.key), *also])

    async def list(self) -> list[User]:
        items = await self._backend.get_range(*prefix_range(USERS_PREFIX))
        return [User.decode(item.value) for item in items]
