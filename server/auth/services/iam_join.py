"""RegisterUsingIAMMethod: a node (or proxy) joins by proving which AWS identity it runs
as, with no shared secret.

The stream: the registration, checked as RegisterAgent checks it, and the iam token it
names; a fresh challenge (256 random bits) for this stream only; the node's signed
``sts:GetCallerIdentity`` request over that challenge, which auth checks and sends to
STS (``server.auth.sts``); the identity STS names matched against the token's rules;
then credentials exactly as RegisterAgent issues them. Each step has CHALLENGE_TTL to
arrive. Every refusal is audited as ``join.failed`` with the ARN when STS named one."""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any

from proto.errors import AccessDenied, BadParameter, MeziteError, NotAuthenticated
from proto.v1 import auth_pb2 as pb
from server.auth.auditing import Auditor
from server.auth.rpc.router import CallContext
from server.auth.services.nodes import NodeService
from server.auth.stores.iam_tokens import IAMTokens
from server.auth.sts import AWSIdentity, STSClient

log = logging.getLogger(__name__)

CHALLENGE_TTL = 60.0


class IAMJoinService:
    challenge_ttl = CHALLENGE_TTL  # each step's time to arrive

    def __init__(
        self, nodes: NodeService, tokens: IAMTokens, sts: STSClient, auditor: Auditor
    ) -> None:
        self._nodes = nodes
        self._tokens = tokens
        self._sts = sts
        self._audit = auditor

    async def register_using_iam_method(self, stream: Any, ctx: CallContext) -> None:
        name, who = "", None
        try:
            first = await self._next(ctx, "register")
            name = first.register.name[:64]
            reg = self._nodes.check_registration(first.register)
            token = await self._tokens.get(first.register.token, reg.kind)
            challenge = secrets.token_urlsafe(32)
            await ctx.send(pb.RegisterUsingIAMMethodResponse(challenge=challenge))
            answer = await self._next(ctx, "sts_request")
            who = await self._sts.identify(answer.sts_request, challenge)
            if not token.admits(who.account, who.arn):
                raise AccessDenied(
                    f"the AWS identity {who.arn} is not admitted by IAM token {token.name!r}"
                )
            credentials = await self._nodes.join_by_aws(reg, token, who, ctx)
        except MeziteError as err:
            self._failed(err, name, who, ctx)
            raise
        await ctx.send(pb.RegisterUsingIAMMethodResponse(credentials=credentials))

    async def _next(self, ctx: CallContext, step: str) -> pb.RegisterUsingIAMMethodRequest:
        try:
            async with asyncio.timeout(self.challenge_ttl):
                message = await ctx.recv()
        except TimeoutError:
            raise NotAuthenticated(
                f"the IAM join took longer than {self.challenge_ttl:.0f}s to answer; "
                "the challenge expired"
            ) from None
        if message is None or message.WhichOneof("step") != step:
            raise BadParameter(
                "an IAM join sends the registration, then the signed STS request, once each"
            )
        assert isinstance(message, pb.RegisterUsingIAMMethodRequest)
        return message

    def _failed(
        self, err: MeziteError, name: str, who: AWSIdentity | None, ctx: CallContext
    ) -> None:
        self._audit.emit(
            "join.failed",
            reason=err.message,
            method="iam",
            node=name,
            aws_arn=who.arn if who else "",
            aws_account=who.account if who else "",
            peer=ctx.peer_addr,
        )
