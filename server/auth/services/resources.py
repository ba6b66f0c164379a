"""Admin RPCs for roles and join tokens."""

from __future__ import annotations

from proto.v1 import auth_pb2 as pb
from server.auth.auditing import Auditor
from server.auth.rpc.router import CallContext
from server.auth.stores.join_tokens import JoinTokens
from server.auth.stores.roles import RoleStore, role_from_proto, role_to_proto


class RoleAdminService:
    def __init__(self, roles: RoleStore, auditor: Auditor) -> None:
        self._roles = roles
        self._audit = auditor

    async def upsert_role(
        self, request: pb.UpsertRoleRequest, ctx: CallContext
    ) -> pb.UpsertRoleResponse:
        role = role_from_proto(request.role)
        created = await self._roles.upsert(role)
        self._audit.emit("role.created", user=ctx.principal.name, name=role.name, created=created)
        return pb.UpsertRoleResponse(created=created)

    async def list_roles(
        self, request: pb.ListRolesRequest, ctx: CallContext
    ) -> pb.ListRolesResponse:
        if request.name:
            roles = [await self._roles.get(request.name)]
        else:
            roles = await self._roles.list()
        return pb.ListRolesResponse(roles=[role_to_proto(r) for r in roles])

    async def delete_role(
        self, request: pb.DeleteRoleRequest, ctx: CallContext
    ) -> pb.DeleteRoleResponse:
        await self._roles.delete(request.name)
        self._audit.emit("role.deleted", user=ctx.principal.name, name=request.name)
        return pb.DeleteRoleResponse()


class TokenAdminService:
    def __init__(self, tokens: JoinTokens, auditor: Auditor) -> None:
        self._tokens = tokens
        self._audit = auditor

    async def create_token(
        self, request: pb.CreateTokenRequest, ctx: CallContext
    ) -> pb.CreateTokenResponse:
        token, info = await self._tokens.create(
            request.type, float(request.ttl_seconds), dict(request.labels)
        )
        self._audit.emit(
            "token.create",
            user=ctx.principal.name,
            token_name=info.name,
            join_type=info.type,
            expires=info.expires,
        )
        return pb.CreateTokenResponse(token=token.text, name=info.name, expires=info.expires)

    async def list_tokens(
        self, request: pb.ListTokensRequest, ctx: CallContext
    ) -> pb.ListTokensResponse:
        return pb.ListTokensResponse(
            tokens=[
                pb.JoinToken(name=t.name, type=t.type, expires=t.expires, labels=dict(t.labels))
                for t in await self._tokens.list()
            ]
        )

    async def delete_token(
        self, request: pb.DeleteTokenRequest, ctx: CallContext
    ) -> pb.DeleteTokenResponse:
        await self._tokens.delete(request.name)
        self._audit.emit("token.delete", user=ctx.principal.name, token_name=request.name)
        return pb.DeleteTokenResponse()
