"""Admin RPCs for roles and join tokens."""

from __future__ import annotations

from proto.errors import BadParameter
from proto.v1 import auth_pb2 as pb
from server.auth.auditing import Auditor
from server.auth.rpc.router import CallContext
from server.auth.stores.iam_tokens import ONE_TIME_NAME, AWSRule, IAMTokens
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
    """Join tokens of both methods: one-time secrets (``token``) and named rules on AWS
    identities (``iam``), listed and removed through the same RPCs."""

    def __init__(self, tokens: JoinTokens, iam_tokens: IAMTokens, auditor: Auditor) -> None:
        self._tokens = tokens
        self._iam = iam_tokens
        self._audit = auditor

    async def create_token(
        self, request: pb.CreateTokenRequest, ctx: CallContext
    ) -> pb.CreateTokenResponse:
        method = request.join_method or "token"
        if method == "iam":
            rules = [AWSRule.parse(r.aws_account, r.aws_arn) for r in request.allow]
            iam = await self._iam.create(
                request.name,
                request.type,
                float(request.ttl_seconds),
                dict(request.labels),
                rules,
            )
            self._audit.emit("token.create", user=ctx.principal.name, token_name=iam.name,
                             join_type=iam.type, join_method="iam", expires=iam.expires,
                             rules=[str(r) for r in iam.allow])  # fmt: skip
            return pb.CreateTokenResponse(token=iam.name, name=iam.name, expires=iam.expires)
        if method != "token":
            raise BadParameter(f"unknown join method {method[:32]!r}; use token or iam")
        if request.name or request.allow:
            raise BadParameter("a name and --allow rules are for --join-method iam")
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
        one_time = [
            pb.JoinToken(
                name=t.name,
                type=t.type,
                expires=t.expires,
                labels=dict(t.labels),
                join_method="token",
            )
            for t in await self._tokens.list()
        ]
        iam = [
            pb.JoinToken(
                name=t.name,
                type=t.type,
                expires=t.expires,
                labels=dict(t.labels),
                join_method="iam",
                allow=[pb.AWSRule(aws_account=r.account, aws_arn=r.arn) for r in t.allow],
            )
            for t in await self._iam.list()
        ]
        return pb.ListTokensResponse(tokens=one_time + iam)

    async def delete_token(
        self, request: pb.DeleteTokenRequest, ctx: CallContext
    ) -> pb.DeleteTokenResponse:
        if ONE_TIME_NAME.fullmatch(request.name):
            await self._tokens.delete(request.name)
        else:
            await self._iam.delete(request.name)
        self._audit.emit("token.delete", user=ctx.principal.name, token_name=request.name)
        return pb.DeleteTokenResponse()
