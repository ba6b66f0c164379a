"""The joining side of the IAM join: sign ``sts:GetCallerIdentity`` over auth's challenge
with this machine's AWS credentials, and hand auth the signed request, never sending it.

botocore is an optional extra (``mezite[aws]``), imported only here and only when an IAM
join runs. Its standard chain finds the credentials (environment, shared files, the
instance role); the region is ``--aws-region``, else ``AWS_REGION``/``AWS_DEFAULT_REGION``
or the config file, else the instance's; the endpoint is botocore's own regional one, so
the request names ``sts.REGION.amazonaws.com`` and auth forwards it there. The challenge
goes in ``X-Mezite-Challenge`` before signing, so the signature covers it.
"""

from __future__ import annotations

import os
import queue
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from proto.errors import BadParameter, ConnectionProblem, NotAuthenticated, NotFound

if TYPE_CHECKING:
    from proto.v1 import auth_pb2 as pb
    from proto.v1.auth_pb2_grpc import AuthServiceStub

INSTALL_HINT = "install it with `pip install 'mezite[aws]'` (botocore)"
CHALLENGE_HEADER = "X-Mezite-Challenge"
ANSWER_WITHIN = 60.0


class _Captured(Exception):
    """Raised from botocore's before-send hook: the request is signed, and not sent."""

    def __init__(self, request: Any) -> None:
        self.request = request


@dataclass(frozen=True)
class AWSSigner:
    session: Any  # botocore.session.Session
    region: str

    def sign(self, challenge: str) -> pb.SignedSTSRequest:
        from proto.v1 import auth_pb2 as pb

        client = self.session.create_client("sts", region_name=self.region)

        def add_challenge(request: Any, **_: Any) -> None:
            request.headers[CHALLENGE_HEADER] = challenge

        def capture(request: Any, **_: Any) -> None:
            raise _Captured(request)

        client.meta.events.register("before-sign.sts.GetCallerIdentity", add_challenge)
        client.meta.events.register("before-send.sts.GetCallerIdentity", capture)
        try:
            client.get_caller_identity()
        except _Captured as captured:
            request = captured.request
        else:  # pragma: no cover - botocore always sends
            raise ConnectionProblem("botocore sent the STS request itself")
        headers = {name: _text(value) for name, value in request.headers.items()}
        headers["Host"] = urlsplit(request.url).netloc
        body = request.body if isinstance(request.body, bytes) else str(request.body).encode()
        return pb.SignedSTSRequest(body=body, headers=headers)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def aws_signer(region: str | None) -> AWSSigner:
    """This machine's AWS identity, ready to sign; a clear error when there is none."""
    try:
        import botocore.session
        import botocore.utils
    except ImportError:
        raise NotFound("the IAM join needs botocore", hint=INSTALL_HINT) from None
    session = botocore.session.get_session()
    # The regional endpoint whatever botocore's default (older ones used the global one).
    session.set_config_variable("sts_regional_endpoints", "regional")
    region = (
        region
        or os.environ.get("AWS_REGION")
        or session.get_config_variable("region")
        or botocore.utils.InstanceMetadataRegionFetcher().retrieve_region()
    )
    if not region:
        raise BadParameter(
            "no AWS region for the IAM join",
            hint="pass --aws-region (or set AWS_REGION), e.g. --aws-region eu-west-1",
        )
    if session.get_credentials() is None:
        raise NotAuthenticated(
            "no AWS credentials found for the IAM join",
            hint="botocore looks in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, ~/.aws and the "
            "instance's role",
        )
    return AWSSigner(session, str(region))


def register_by_iam(
    rpc: AuthServiceStub, register: pb.RegisterAgentRequest, signer: AWSSigner
) -> pb.RegisterAgentResponse:
    """The RegisterUsingIAMMethod stream: the registration, auth's challenge, the signed
    request, the credentials (as RegisterAgent's response, for the kind's join code)."""
    from proto.v1 import auth_pb2 as pb

    answers: queue.Queue[pb.RegisterUsingIAMMethodRequest | None] = queue.Queue()

    def requests() -> Iterator[pb.RegisterUsingIAMMethodRequest]:
        yield pb.RegisterUsingIAMMethodRequest(register=register)
        answer = answers.get(timeout=ANSWER_WITHIN)
        if answer is not None:
            yield answer

    try:
        for reply in rpc.RegisterUsingIAMMethod(requests()):
            step = reply.WhichOneof("step")
            if step == "challenge":
                signed = signer.sign(reply.challenge)
                answers.put(pb.RegisterUsingIAMMethodRequest(sts_request=signed))
            elif step == "credentials":
                return pb.RegisterAgentResponse(credentials=reply.credentials)
    finally:
        answers.put(None)  # a request iterator still waiting ends
    raise ConnectionProblem("the auth service ended the IAM join without credentials")
