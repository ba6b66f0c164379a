"""Password logins, invites, sessions: AuthenticateLocal, AcceptInvite, Logout,
GetCurrentUser."""

from __future__ import annotations

import json
import logging
from dataclasses import replace

from proto.clock import Clock
from proto.errors import AccessDenied, CompareFailed, NotAuthenticated, NotFound
from proto.limits import MAX_USERNAME_CHARS
from proto.locks import Subject
from proto.v1 import auth_pb2 as pb
from server.auth.auditing import Auditor
from server.auth.crypto.passwords import (
    MAX_PASSWORD_BYTES,
    hash_password,
    needs_rehash,
    rehash_password,
    verify_password,
)
from server.auth.rbac import load_checker
from server.auth.rpc.guard import PrincipalKind
from server.auth.rpc.router import CallContext
from server.auth.stores.lockout import LoginLockout
from server.auth.stores.locks import LockCache
from server.auth.stores.roles import RoleStore
from server.auth.stores.secret_tokens import PendingToken, SecretToken, new_token, parse_token
from server.auth.stores.sessions import SessionStore
from server.auth.stores.users import User, UserStore
from server.backend import Backend, Delete, Item, Put
from server.backend.atomic import Action

log = logging.getLogger(__name__)

INVITES_PREFIX = "invites/"
MAX_USERNAME_LEN = MAX_USERNAME_CHARS
# One message for unknown user, wrong password and locked account alike.
LOGIN_FAILED = "invalid username or password"
INVITE_FAILED = "invalid or expired invite"


def _printable(name: str) -> str:
    """A username as typed, safe to put in an audit event."""
    return "".join(c if c.isprintable() else "?" for c in name[:MAX_USERNAME_LEN])


class Invites:
    """One-time tokens that set a password. The user record holds the one pending
    invite (its name, secret hash and expiry); ``invites/<name>`` only finds the user
    from a token. So a new invite voids the old one, and an invite can set the password
    only of the very incarnation it was issued to."""

    def __init__(self, backend: Backend, users: UserStore, clock: Clock, ttl: float) -> None:
        self._backend = backend
        self._users = users
        self._clock = clock
        self.ttl = ttl

    def issue(self, user: User) -> tuple[SecretToken, User, list[Action]]:
        """A new invite for ``user``: the token, the user record carrying it, and the
        index writes (this one in, any earlier one out) to store with that record."""
        token = new_token()
        expires = self._clock.now() + self.ttl
        doc = {"user": user.name, "incarnation": user.incarnation}
        index = Item(INVITES_PREFIX + token.name, json.dumps(doc).encode(), expires=expires)
        fresh = replace(user, invite=PendingToken(token.name, token.secret_hash, expires))
        return token, fresh, [Put(index), *self.dropped(user)]

    @staticmethod
    def dropped(user: User) -> list[Action]:
        """What removes ``user``'s pending invite from the index."""
        return [Delete(INVITES_PREFIX + user.invite.name)] if user.invite else []

    async def redeem(self, text: str, password_hash: str) -> User:
        """Set the password with an invite, exactly once under any race; anything else
        is the same NotAuthenticated and changes nothing."""
        token = parse_token(text, "invite")
        try:
            index = await self._backend.get(INVITES_PREFIX + token.name)
        except NotFound:
            raise NotAuthenticated(INVITE_FAILED) from None
        doc = json.loads(index.value)
        found = await self._users.find_item(str(doc["user"]))
        if found is None:
            raise NotAuthenticated(INVITE_FAILED)
        item, user = found
        invite = user.invite
        if (
            invite is None
            or user.incarnation != doc["incarnation"]
            or not invite.redeemable(token, self._clock.now())
        ):
            raise NotAuthenticated(INVITE_FAILED)
        fresh = replace(user, password_hash=password_hash, invite=None)
        try:
            await self._users.replace(item, fresh, Delete(index.key))
        except CompareFailed:
            raise NotAuthenticated(INVITE_FAILED) from None
        return fresh


class LoginService:
    def __init__(
        self,
        *,
        users: UserStore,
        roles: RoleStore,
        sessions: SessionStore,
        lockout: LoginLockout,
        invites: Invites,
        locks: LockCache,
        auditor: Auditor,
    ) -> None:
        self._users = users
        self._roles = roles
        self._sessions = sessions
        self._lockout = lockout
        self._invites = invites
        self._locks = locks
        self._audit = auditor

    async def authenticate_local(
        self, request: pb.AuthenticateLocalRequest, ctx: CallContext
    ) -> pb.AuthenticateLocalResponse:
        name, password = request.username, request.password
        found = await self._users.find_item(name) if len(name) <= MAX_USERNAME_LEN else None
        user = found[1] if found else None
        locked = bool(user and await self._lockout.locked_until(user.name))
        # Always verify (a dummy hash when there is no user): the same work either way.
        stored = user.password_hash if user else None
        matched = await verify_password(stored, password[: MAX_PASSWORD_BYTES + 1])
        if user is None or locked or not matched:
            reason = "locked" if locked else "bad credentials"
            if user is not None and not locked and await self._lockout.record_failure(user.name):
                reason = "bad credentials; account now locked"
            self._audit.emit(
                "user.login.failed",
                user=_printable(name),
                success=False,
                method="local",
                reason=reason,
                peer=ctx.peer_addr,
            )
            raise NotAuthenticated(LOGIN_FAILED)
        await self._lockout.clear(user.name)
        lock = self._locks.find(Subject("user", user.name, user.incarnation, user.roles))
        if lock is not None:
            # Only now, with the password verified: a guesser learns nothing.
            self._audit.emit(
                "user.login.failed",
                user=user.name,
                success=False,
                method="local",
                reason=f"locked ({lock.name})",
                peer=ctx.peer_addr,
            )
            raise AccessDenied(f"access denied: {lock.message()}")
        assert found is not None
        session = await self._sessions.create(found[0], user)
        self._audit.emit("user.login", user=user.name, method="local", peer=ctx.peer_addr)
        if stored is not None and needs_rehash(stored):
            await self._rehash(found[0], user, password)
        return pb.AuthenticateLocalResponse(session_id=session.session_id, expires=session.expires)

    async def _rehash(self, item: Item, user: User, password: str) -> None:
        """Store the password again under today's parameters, unless the user changed
        since it was read (then that change stands, and the next login rehashes)."""
        fresh = replace(user, password_hash=await rehash_password(password))
        try:
            await self._users.replace(item, fresh)
        except CompareFailed:
            log.info("user %s changed during login; password hash left for the next", user.name)
        else:
            log.info("password hash of %s upgraded to the current parameters", user.name)

    async def accept_invite(
        self, request: pb.AcceptInviteRequest, ctx: CallContext
    ) -> pb.AcceptInviteResponse:
        password_hash = await hash_password(request.password)  # validates before redeeming
        try:
            user = await self._invites.redeem(request.token, password_hash)
        except NotAuthenticated:
            self._audit.emit(
                "user.password_change", success=False, reason="invalid invite", peer=ctx.peer_addr
            )
            raise NotAuthenticated(INVITE_FAILED) from None
        self._audit.emit("user.password_change", user=user.name, method="invite")
        return pb.AcceptInviteResponse(username=user.name)

    async def logout(self, request: pb.LogoutRequest, ctx: CallContext) -> pb.LogoutResponse:
        principal = ctx.principal
        if principal.kind != PrincipalKind.USER:
            raise NotAuthenticated("only a session can log out")
        await self._sessions.delete(principal.session_key)
        self._audit.emit("session.logout", user=principal.name)
        return pb.LogoutResponse()

    async def get_current_user(
        self, request: pb.GetCurrentUserRequest, ctx: CallContext
    ) -> pb.GetCurrentUserResponse:
        principal = ctx.principal
        if principal.kind != PrincipalKind.USER:
            roles = ["admin"] if principal.is_admin else list(principal.roles)
            return pb.GetCurrentUserResponse(username=principal.name, roles=roles)
        user, checker = await load_checker(self._users, self._roles, principal.name)
        return pb.GetCurrentUserResponse(
            username=user.name,
            roles=list(user.roles),
            logins=list(checker.logins()),
            session_expires=principal.session_expires,
        )
