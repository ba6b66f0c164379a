"""Admin RPCs for users: CreateUser, ListUsers, DeleteUser, ResetUser."""

from __future__ import annotations

from proto.clock import Clock
from proto.v1 import auth_pb2 as pb
from server.auth.auditing import Auditor
from server.auth.login_service import Invites
from server.auth.passwords import hash_password
from server.auth.roles import RoleStore
from server.auth.router import CallContext
from server.auth.users import User, UserStore, validate_user_fields


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
        )
        await self._users.create(user)
        self._audit.emit(
            "user.create",
            user=ctx.principal.name,
            name=user.name,
            roles=list(user.roles),
            logins=list(user.logins),
        )
        if password_hash:
            return pb.CreateUserResponse()
        token, expires = await self._invites.create(user.name)
        return pb.CreateUserResponse(invite_token=token.text, invite_expires=expires)

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

    async def delete_user(
        self, request: pb.DeleteUserRequest, ctx: CallContext
    ) -> pb.DeleteUserResponse:
        # Sessions resolve through the user record: with it gone they are dead.
        await self._users.delete(request.name)
        self._audit.emit("user.delete", user=ctx.principal.name, name=request.name)
        return pb.DeleteUserResponse()

    async def reset_user(
        self, request: pb.ResetUserRequest, ctx: CallContext
    ) -> pb.ResetUserResponse:
        current = await self._users.get(request.name)
        # A new generation kills every session of the user at once.
        await self._users.update(
            current.name, password_hash=None, generation=current.generation + 1
        )
        token, expires = await self._invites.create(current.name)
        self._audit.emit("user.reset", user=ctx.principal.name, name=current.name)
        return pb.ResetUserResponse(invite_token=token.text, invite_expires=expires)
