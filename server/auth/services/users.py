"""Admin RPCs for users: CreateUser, ListUsers, DeleteUser, ResetUser.

Deleting or resetting a user ends its incarnation in one backend write: the record goes
(or gets a new incarnation), its sessions and pending invite go, and a lock on the old
incarnation comes in, lasting as long as any certificate it may still hold, so that
nodes refuse those certificates at once."""

from __future__ import annotations

from dataclasses import replace

from proto.clock import Clock
from proto.errors import CompareFailed
from proto.locks import Lock, LockTarget
from proto.v1 import auth_pb2 as pb
from server.auth.auditing import Auditor
from server.auth.crypto.passwords import hash_password
from server.auth.crypto.sshcert import MAX_CERT_TTL
from server.auth.rpc.router import CallContext
from server.auth.services.login import Invites
from server.auth.stores.incarnations import new_incarnation
from server.auth.stores.locks import CLOCK_SKEW, SYSTEM, lock_item, new_lock
from server.auth.stores.roles import RoleStore
from server.auth.stores.sessions import sessions_range
from server.auth.stores.users import User, UserStore, validate_user_fields
from server.backend import DeleteRange, Put

RETRIES = 20


class UserAdminService:
    def __init__(
        self,
        *,
        users: UserStore,
        roles: RoleStore,
        invites: Invites,
        auditor: Auditor,
        clock: Clock,
    ) -> None:
        self._users = users
        self._roles = roles
        self._invites = invites
        self._audit = auditor
        self._clock = clock

    async def create_user(
        self, request: pb.CreateUserRequest, ctx: CallContext
    ) -> pb.CreateUserResponse:
        roles, logins = list(dict.fromkeys(request.roles)), list(dict.fromkeys(request.logins))
        validate_user_fields(request.name, roles, logins)
        for role in roles:
            await self._roles.get(role)  # NotFound names the missing role
        password_hash = await hash_password(request.password) if request.password else None
        user = User(
            name=request.name,
            roles=tuple(roles),
            logins=tuple(logins),
            created=self._clock.now(),
            password_hash=password_hash,
            incarnation=new_incarnation(),
        )
        token = None
        if password_hash:
            await self._users.create(user)
        else:
            token, user, index = self._invites.issue(user)
            await self._users.create(user, *index)
        self._audit.emit(
            "user.create",
            user=ctx.principal.name,
            name=user.name,
            roles=list(user.roles),
            logins=list(user.logins),
        )
        if token is None or user.invite is None:
            return pb.CreateUserResponse()
        return pb.CreateUserResponse(invite_token=token.text, invite_expires=user.invite.expires)

    async def list_users(
        self, request: pb.ListUsersRequest, ctx: CallContext
    ) -> pb.ListUsersResponse:
        return pb.ListUsersResponse(
            users=[
                pb.User(
                    name=u.name,
                    roles=list(u.roles),
                    logins=list(u.logins),
                    has_password=u.password_hash is not None,
                    created=u.created,
                )
                for u in await self._users.list()
            ]
        )

    def _end_of(self, user: User, why: str, ctx: CallContext) -> Lock:
        """The automatic lock on ``user``'s incarnation: its certificates live at most
        30 hours (and never past the session that asked for them)."""
        return new_lock(
            LockTarget(user=user.name, incarnation=user.incarnation),
            reason=f"user {user.name} {why} by {ctx.principal.name}",
            created_by=SYSTEM,
            now=self._clock.now(),
            ttl=MAX_CERT_TTL + CLOCK_SKEW,
        )

    def _audit_lock(self, lock: Lock, ctx: CallContext) -> None:
        self._audit.emit(
            "lock.create", user=ctx.principal.name, lock=lock.name,
            target=lock.target.describe(), reason=lock.reason, expires=lock.expires,
        )  # fmt: skip

    async def delete_user(
        self, request: pb.DeleteUserRequest, ctx: CallContext
    ) -> pb.DeleteUserResponse:
        for _ in range(RETRIES):
            item, user = await self._users.get_item(request.name)
            lock = self._end_of(user, "deleted", ctx)
            try:
                await self._users.remove(
                    item,
                    DeleteRange(*sessions_range(user.incarnation)),
                    *self._invites.dropped(user),
                    Put(lock_item(lock)),
                )
            except CompareFailed:
                continue  # changed as we read it (a password set): read again
            self._audit.emit("user.delete", user=ctx.principal.name, name=user.name)
            self._audit_lock(lock, ctx)
            return pb.DeleteUserResponse()
        raise CompareFailed(f"user {request.name!r} is changing too fast; try again")

    async def reset_user(
        self, request: pb.ResetUserRequest, ctx: CallContext
    ) -> pb.ResetUserResponse:
        for _ in range(RETRIES):
            item, user = await self._users.get_item(request.name)
            lock = self._end_of(user, "reset", ctx)
            reborn = replace(user, password_hash=None, incarnation=new_incarnation())
            token, reborn, index = self._invites.issue(reborn)
            try:
                await self._users.replace(
                    item,
                    reborn,
                    DeleteRange(*sessions_range(user.incarnation)),
                    *index,
                    Put(lock_item(lock)),
                )
            except CompareFailed:
                continue
            self._audit.emit("user.reset", user=ctx.principal.name, name=user.name)
            self._audit_lock(lock, ctx)
            assert reborn.invite is not None
            return pb.ResetUserResponse(
                invite_token=token.text, invite_expires=reborn.invite.expires
            )
        raise CompareFailed(f"user {request.name!r} is changing too fast; try again")
