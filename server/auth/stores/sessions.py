"""Login sessions, kept under the incarnation of the account that opened them.

A session ID is the account's incarnation (32 hex characters, not secret) followed by a
256-bit random secret (43 base64url characters). Only the secret's SHA-256 hash is
stored, at ``sessions/<incarnation>/<hash>``, with the session's expiry. So:
- a session resolves only while the account it names has that incarnation: deleting or
  resetting the account ends it, and a re-created account of the same name is another
  incarnation;
- every session of an account is one key range, deleted in the same write as the
  account itself;
- a session is opened only in a write conditioned on the account being as it was read,
  so none can slip in beside a concurrent deletion.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass

from proto.clock import Clock
from proto.errors import CompareFailed, NotAuthenticated, NotFound
from server.auth.rpc.guard import Principal, PrincipalKind
from server.auth.stores.users import User, UserStore
from server.backend import Backend, Condition, Item, Put, prefix_range
from server.backend.mirror import Reads

SESSIONS_PREFIX = "sessions/"
_SESSION_ID = re.compile(r"([0-9a-f]{32})([A-Za-z0-9_-]{43})")
_EXPIRED = NotAuthenticated("invalid or expired session", hint="log in again with `mez login`")


def session_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def session_key(session_id: str) -> str:
    """Where a session is stored; the same NotAuthenticated for anything malformed."""
    match = _SESSION_ID.fullmatch(session_id)
    if match is None:
        raise _EXPIRED
    incarnation, secret = match.groups()
    return f"{SESSIONS_PREFIX}{incarnation}/{session_hash(secret)}"


def sessions_range(incarnation: str) -> tuple[str, str]:
    """Every session of one incarnation of an account."""
    return prefix_range(f"{SESSIONS_PREFIX}{incarnation}/")


@dataclass(frozen=True)
class NewSession:
    session_id: str
    expires: float


class SessionStore:
    def __init__(
        self, backend: Backend, users: UserStore, clock: Clock, ttl: float,
        reads: Reads | None = None,
    ) -> None:  # fmt: skip
        self._backend = backend
        self._reads: Reads = reads or backend  # a mirror on the auth server (every call)
        self._users = users
        self._clock = clock
        self._ttl = ttl

    async def create(self, user_item: Item, user: User) -> NewSession:
        """A session for ``user``, as long as the account is still as it was read;
        NotAuthenticated if it changed (deleted, reset) in the meantime."""
        session_id = user.incarnation + secrets.token_urlsafe(32)
        now = self._clock.now()
        expires = now + self._ttl
        doc = {"user": user.name, "created": now}
        item = Item(key=session_key(session_id), value=json.dumps(doc).encode(), expires=expires)
        try:
            await self._backend.atomic_write([Condition.unchanged(user_item)], [Put(item)])
        except CompareFailed:
            raise _EXPIRED from None
        return NewSession(session_id=session_id, expires=expires)

    async def resolve_session(self, session_id: str) -> Principal:
        """The guard's session lookup; every failure is the same error."""
        key = session_key(session_id)
        try:
            item = await self._reads.get(key)
        except NotFound:
            raise _EXPIRED from None
        doc = json.loads(item.value)
        user = await self._users.find(doc["user"])
        incarnation = session_id[:32]
        if user is None or user.incarnation != incarnation or item.expires is None:
            raise _EXPIRED
        return Principal(
            kind=PrincipalKind.USER,
            name=user.name,
            roles=user.roles,
            incarnation=incarnation,
            session_key=key,
            session_expires=item.expires,
        )

    async def delete(self, key: str) -> None:
        try:
            await self._backend.delete(key)
        except NotFound:
            raise _EXPIRED from None
