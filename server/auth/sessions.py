"""Login sessions: opaque random IDs (256 bits) stored only as their SHA-256 hash, with
an expiry, dead on logout, and dead when the user is deleted or reset (the user's
generation moves on)."""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass

from proto.clock import Clock
from proto.errors import NotAuthenticated, NotFound
from server.auth.grpc_auth import Principal
from server.auth.users import UserStore
from server.backend import Backend, Item

SESSIONS_PREFIX = "sessions/"
_EXPIRED = NotAuthenticated("invalid or expired session", hint="log in again with `mez login`")


def session_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


@dataclass(frozen=True)
class NewSession:
    session_id: str
    expires: float


class SessionStore:
    def __init__(self, backend: Backend, users: UserStore, clock: Clock, ttl: float) -> None:
        self._backend = backend
        self._users = users
        self._clock = clock
        self._ttl = ttl

    async def create(self, username: str, generation: int) -> NewSession:
        session_id = secrets.token_urlsafe(32)
        now = self._clock.now()
        expires = now + self._ttl
        doc = {"user": username, "created": now, "generation": generation}
        await self._backend.create(
            Item(
                key=SESSIONS_PREFIX + session_hash(session_id),
                value=json.dumps(doc).encode(),
                expires=expires,
            )
        )
        return NewSession(session_id=session_id, expires=expires)

    async def resolve_session(self, session_id: str) -> Principal:
        """The guard's session lookup; every failure is the same error."""
        digest = session_hash(session_id)
        try:
            item = await self._backend.get(SESSIONS_PREFIX + digest)
        except NotFound:
            raise _EXPIRED from None
        doc = json.loads(item.value)
        user = await self._users.find(doc["user"])
        if user is None or user.generation != doc["generation"] or item.expires is None:
            raise _EXPIRED
        return Principal(
            kind="user",
            name=user.name,
            roles=user.roles,
            session_id_hash=digest,
            session_expires=item.expires,
        )

    async def delete(self, digest: str) -> None:
        try:
            await self._backend.delete(SESSIONS_PREFIX + digest)
        except NotFound:
            raise _EXPIRED from None
