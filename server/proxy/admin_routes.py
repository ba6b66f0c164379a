"""The admin endpoints of ``/v1/webapi/`` that the web UI's admin pages use: users,
join tokens and roles.

The proxy decides nothing here: each call goes to auth with the caller's session, and
auth's guard refuses a caller without the admin role (403), exactly as it does for
`mezctl` away from the auth host. The proxy adds only what a browser needs on top of
auth's answer: the invite link and the join command line (``proto.joinline``, the
renderer mezctl uses), and roles as YAML (``proto.resources``, the form `mezctl get`
prints and `mezctl create` reads).
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from proto.errors import BadParameter
from proto.joinline import invite_url, join_command
from proto.resources import role_from_yaml, role_to_yaml
from proto.v1 import auth_pb2 as pb
from proto.webjson import to_json
from server.proxy.routes import R, Send, WebAPI, labels_from_pairs
from server.proxy.specs import NAME_PATTERN, ROLE_BODY, TOKEN_BODY, USER_BODY
from server.proxy.validation import parse_json_object, parse_query


def _name(request: Request, kind: str) -> str:
    name = str(request.path_params["name"])
    if not re.fullmatch(NAME_PATTERN, name):
        raise BadParameter(f"invalid {kind} name {name[:80]!r}")
    return name


class AdminAPI:
    """Admin handlers over the same calls, sessions and CSRF rules as ``WebAPI``."""

    def __init__(self, api: WebAPI) -> None:
        self.api = api

    async def _ask(self, request: Request, method: str, send: Send[R]) -> R:
        """One admin call of auth's ``method`` for the caller's session (CSRF-checked),
        for a request whose query string must be empty."""
        session = self.api.session(request)
        parse_query(request, ())
        return await self.api.call(method, send, request=request, session=session)

    def _invite(self, token: str, expires: float) -> Response:
        return JSONResponse(
            {
                "invite_token": token,
                "invite_expires": expires,
                "invite_url": invite_url(self.api.settings.public_origin, token),
            }
        )

    # --- users -------------------------------------------------------------------

    async def users(self, request: Request) -> Response:
        reply = await self._ask(
            request, "ListUsers", lambda rpc, md: rpc.ListUsers(pb.ListUsersRequest(), metadata=md)
        )
        return JSONResponse(to_json(reply))

    async def add_user(self, request: Request) -> Response:
        session = self.api.session(request)
        parse_query(request, ())
        body = parse_json_object(await self.api.json_body(request), USER_BODY)
        create = pb.CreateUserRequest(name=body["name"], roles=body["roles"], logins=body["logins"])
        reply = await self.api.call(
            "CreateUser",
            lambda rpc, md: rpc.CreateUser(create, metadata=md),
            request=request,
            session=session,
        )
        return self._invite(reply.invite_token, reply.invite_expires)

    async def reset_user(self, request: Request) -> Response:
        reset = pb.ResetUserRequest(name=_name(request, "user"))
        reply = await self._ask(
            request, "ResetUser", lambda rpc, md: rpc.ResetUser(reset, metadata=md)
        )
        return self._invite(reply.invite_token, reply.invite_expires)

    async def remove_user(self, request: Request) -> Response:
        remove = pb.DeleteUserRequest(name=_name(request, "user"))
        await self._ask(request, "DeleteUser", lambda rpc, md: rpc.DeleteUser(remove, metadata=md))
        return Response(status_code=204)

    # --- join tokens -------------------------------------------------------------

    async def tokens(self, request: Request) -> Response:
        reply = await self._ask(
            request, "ListTokens",
            lambda rpc, md: rpc.ListTokens(pb.ListTokensRequest(), metadata=md),
        )  # fmt: skip
        return JSONResponse(to_json(reply))

    async def add_token(self, request: Request) -> Response:
        """A one-time join token (IAM rules stay with mezctl: they are rare and long)."""
        session = self.api.session(request)
        parse_query(request, ())
        body = parse_json_object(await self.api.json_body(request), TOKEN_BODY)
        create = pb.CreateTokenRequest(
            type=body["type"],
            ttl_seconds=body["ttl_seconds"],
            labels=labels_from_pairs(body["labels"]),
        )
        reply = await self.api.call(
            "CreateToken",
            lambda rpc, md: rpc.CreateToken(create, metadata=md),
            request=request,
            session=session,
        )
        settings = self.api.settings
        auth_addr = settings.auth_addr.split(",")[0]
        pin = settings.ca_pins[0] if settings.ca_pins else ""
        return JSONResponse(
            {
                "token": reply.token,
                "name": reply.name,
                "expires": reply.expires,
                "join_command": join_command(body["type"], reply.token, auth_addr, pin),
            }
        )

    async def remove_token(self, request: Request) -> Response:
        remove = pb.DeleteTokenRequest(name=_name(request, "token"))
        await self._ask(
            request, "DeleteToken", lambda rpc, md: rpc.DeleteToken(remove, metadata=md)
        )
        return Response(status_code=204)

    # --- roles -------------------------------------------------------------------

    async def roles(self, request: Request) -> Response:
        reply = await self._ask(
            request, "ListRoles", lambda rpc, md: rpc.ListRoles(pb.ListRolesRequest(), metadata=md)
        )
        return JSONResponse(
            {"roles": [{"name": role.name, "yaml": role_to_yaml(role)} for role in reply.roles]}
        )

    async def put_role(self, request: Request) -> Response:
        """Create or replace the role named in the path from one YAML document, which
        must name the same role (a rename through the editor would be a silent copy)."""
        session = self.api.session(request)
        parse_query(request, ())
        name = _name(request, "role")
        body = parse_json_object(await self.api.json_body(request), ROLE_BODY)
        role = role_from_yaml(body["yaml"], source="role")
        if role.name != name:
            raise BadParameter(
                f"metadata.name: {role.name[:80]!r} does not match the role being saved ({name!r})"
            )
        reply = await self.api.call(
            "UpsertRole",
            lambda rpc, md: rpc.UpsertRole(pb.UpsertRoleRequest(role=role), metadata=md),
            request=request,
            session=session,
        )
        return JSONResponse({"created": reply.created})
