"""Password logins, invites, sessions: AuthenticateLocal, AcceptInvite, Logout,
GetCurrentUser."""

from __future__ import annotations

import json

from proto.clock import Clock
from proto.errors import CompareFailed, NotAuthenticated, NotFound
from proto.v1 import auth_pb2 as pb
from server.auth.auditing import Auditor
from server.auth.lockout import LoginLockout
from server.auth.passwords import MAX_PASSWORD_BYTES, hash_password, verify_password
from server.auth.rbac import load_checker
from server.auth.roles import RoleStore
from server.auth.router import CallContext
from server.auth.secret_tokens import SecretToken, new_token, parse_token, secret_matches
from server.auth.sessions import SessionStore
from server.auth.users import UserStore
from server.backend import Backend, Item

INVITES_PREFIX = "invites/"
MAX_USERNAME_LEN = 64
# One message for unknown user, wrong password and locked account alike.
LOGIN_FAILED = "invalid username or password"
INVITE_FAILED = "invalid or expired invite"


def _printable(name: str) -> str:
    """A username as typed, safe to put in an audit event."""
    return "".join(c if c.isprintable() else "?" for c in name[:MAX_USERNAME_LEN])


class Invites:
    """One-time tokens to set a password, stored hashed with an expiry."""

    def __init__(self, backend: Backend, clock: Clock, ttl: float) -> None:
        self._backend = backend
        self._clock = clock
        self.ttl = ttl

    async def create(self, username: str) -> tuple[SecretToken, float]:
        token = new_token()
        expires = self._clock.now() + self.ttl
        doc = {"user": username, "hash": token.secret_hash}
        await self._backend.create(
            Item(key=INVITES_PREFIX + token.name, value=json.dumps(doc).encode(), expires=expires)
        )
        return token, expires

    async def redeem(self, text: str) -> str:
        """Consume an invite (exactly once, under any race); returns its user."""
        token = parse_token(text, "invite")
        try:
            item = await self._backend.get(INVITES_PREFIX + token.name)
        except NotFound:
            raise NotAuthenticated(INVITE_FAILED) from None
        doc = json.loads(item.value)
        if not secret_matches(token, doc["hash"]):
            raise NotAuthenticated(INVITE_FAILED)
        try:
            await self._backend.compare_and_delete(item)
        except (CompareFailed, NotFound):
            raise NotAuthenticated(INVITE_FAILED) from None
        return str(doc["user"])


class LoginService:
    def __init__(
        self,
        *,
        users: UserStore,
        roles: RoleStore,
        sessions: SessionStore,
        lockout: LoginLockout,
        invites: Invites,
        auditor: Auditor,
    ) -> None:
        self._users = users
        self._roles = roles
        self._sessions = sessions
        self._lockout = lockout
        self._invites = invites
        self._audit = auditor

    async def authenticate_local(
        self, request: pb.AuthenticateLocalRequest, ctx: CallContext
    ) -> pb.AuthenticateLocalResponse:
        name, password = request.username, request.password
        user = await self._users.find(name) if len(name) <= MAX_USERNAME_LEN else None
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
        session = await self._sessions.create(user.name, user.generation)
        self._audit.emit("user.login", user=user.name, method="local", peer=ctx.peer_addr)
        return pb.AuthenticateLocalResponse(session_id=session.session_id, expires=session.expires)

    async def accept_invite(
        self, request: pb.AcceptInviteRequest, ctx: CallContext
    ) -> pb.AcceptInviteResponse:
        password_hash = await hash_password(request.password)  # validates before redeeming
        try:
            username = await self._invites.redeem(request.token)
            user = await self._users.update(username, password_hash=password_hash)
        except (NotAuthenticated, NotFound):
            self._audit.emit(
                "user.password_change", success=False, reason="invalid invite", peer=ctx.peer_addr
            )
            raise NotAuthenticated(INVITE_FAILED) from None
        self._audit.emit("user.password_change", user=user.name, method="invite")
        return pb.AcceptInviteResponse(username=user.name)

    async def logout(self, request: pb.LogoutRequest, ctx: CallContext) -> pb.LogoutResponse:
        principal = ctx.principal
        if principal.kind != "user":
            raise NotAuthenticated("only a session can log out")
        await self._sessions.delete(principal.session_id_hash)
        self._audit.emit("session.logout", user=principal.name)
        return pb.LogoutResponse()

    async def get_current_user(
        self, request: pb.GetCurrentUserRequest, ctx: CallContext
    ) -> pb.GetCurrentUserResponse:
        principal = ctx.principal
        if principal.kind != "user":
            roles = ["admin"] if principal.is_admin else list(principal.roles)
            return pb.GetCurrentUserResponse(username=principal.name, roles=roles)
        user, checker = await load_checker(self._users, self._roles, principal.name)
        return pb.GetCurrentUserResponse(
            username=user.name,
            roles=list(user.roles),
            logins=list(checker.logins()),
            session_expires=principal.session_expires,
        )
