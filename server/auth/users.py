"""Users: name, roles, the logins trait, an Argon2id password hash, and a session
generation that, when bumped (reset, delete), kills every session of the user at once."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, replace

from proto.errors import AlreadyExists, BadParameter, CompareFailed, NotFound
from server.auth.roles import validate_login
from server.backend import Backend, Item, prefix_range

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
    generation: int = 0

    def encode(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def decode(cls, value: bytes) -> User:
        doc = json.loads(value)
        doc["roles"], doc["logins"] = tuple(doc["roles"]), tuple(doc["logins"])
        return cls(**doc)


def validate_user_fields(name: str, roles: list[str], logins: list[str]) -> None:
    validate_username(name)
    if not roles:
        raise BadParameter("a user needs at least one role")
    if len(roles) > MAX_ROLES or len(logins) > MAX_LOGINS:
        raise BadParameter(f"at most {MAX_ROLES} roles and {MAX_LOGINS} logins")
    for login in logins:
        validate_login(login)


class UserStore:
    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    async def get(self, name: str) -> User:
        try:
            item = await self._backend.get(USERS_PREFIX + validate_username(name))
        except NotFound:
            raise NotFound(f"user {name!r} not found") from None
        return User.decode(item.value)

    async def find(self, name: str) -> User | None:
        """Like get, but None for a missing or malformed name (logins must not tell)."""
        try:
            return await self.get(name)
        except (NotFound, BadParameter):
            return None

    async def create(self, user: User) -> None:
        try:
            await self._backend.create(Item(key=USERS_PREFIX + user.name, value=user.encode()))
        except AlreadyExists:
            raise AlreadyExists(f"user {user.name!r} already exists") from None

    async def list(self) -> list[User]:
        items = await self._backend.get_range(*prefix_range(USERS_PREFIX))
        return [User.decode(item.value) for item in items]

    async def delete(self, name: str) -> None:
        try:
            await self._backend.delete(USERS_PREFIX + validate_username(name))
        except NotFound:
            raise NotFound(f"user {name!r} not found") from None

    async def update(self, name: str, **changes: object) -> User:
        """Compare-and-swap loop: concurrent updates never lose one another."""
        for _ in range(20):
            item = await self._backend.get(USERS_PREFIX + validate_username(name))
            updated = replace(User.decode(item.value), **changes)  # type: ignore[arg-type]
            try:
                await self._backend.compare_and_swap(
                    item, Item(key=item.key, value=updated.encode())
                )
            except CompareFailed:
                continue
            return updated
        raise CompareFailed(f"user {name!r} is changing too fast; try again")
