"""The IAM join against a real STS peer: moto's server on 127.0.0.1 with its SigV4
authentication on, a real auth server sending the signed requests there
(``auth.sts_endpoint_override``; the signed Host stays an AWS one), and the node's own
signing code (``proto.aws_join``, botocore) with an IAM user's keys and with AssumeRole
session credentials, as an instance role gives. Every refusal changes nothing and is
audited as ``join.failed``."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.join import JoinRequest, join
from proto.aws_join import aws_signer, register_by_iam
from proto.clock import FakeClock
from proto.errors import AccessDenied, AlreadyExists, BadParameter, MeziteError, NotAuthenticated
from proto.keys import new_node_keys
from proto.v1 import auth_pb2 as pb
from server.auth.services.iam_join import IAMJoinService
from tests.integration.conftest import audit_events, keys_under
from tests.moto_sts import ACCOUNT, AWSCredentials, MotoSTS, moto_sts
from tests.servers import RunningAuth, running_auth

ROLE_GLOB = f"arn:aws:sts::{ACCOUNT}:assumed-role/mezd-nodes/*"
RULE_NAME = "aws-prod"  # an iam token's name: no secret in it


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoSTS]:
    with moto_sts(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture
def auth(tmp_path: Path, clock: FakeClock, moto: MotoSTS) -> Iterator[RunningAuth]:
    flags = {"auth.sts_endpoint_override": moto.url}
    with running_auth(tmp_path / "data", clock=clock, **flags) as running:
        yield running


@pytest.fixture
def as_role(moto: MotoSTS, monkeypatch: pytest.MonkeyPatch) -> AWSCredentials:
    return use(moto.role_session, monkeypatch)


def use(creds: AWSCredentials, monkeypatch: pytest.MonkeyPatch) -> AWSCredentials:
    for name, value in creds.env().items():
        monkeypatch.setenv(name, value)
    if not creds.session_token:
        monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    return creds


def iam_token(
    auth: RunningAuth, name: str = "aws-prod", type: str = "node", ttl: int = 0, **rule: str
) -> None:
    allow = (
        [pb.AWSRule(aws_account=ACCOUNT, aws_arn=ROLE_GLOB)] if not rule else [pb.AWSRule(**rule)]
    )
    with auth.admin() as admin:
        admin.rpc.CreateToken(pb.CreateTokenRequest(
            type=type, join_method="iam", name=name, allow=allow, ttl_seconds=ttl,
            labels={"cloud": "aws"},
        ))  # fmt: skip


def registration(name: str = "i-node", token: str = RULE_NAME) -> pb.RegisterAgentRequest:
    keys = new_node_keys()
    return pb.RegisterAgentRequest(token=token, name=name, ssh_public_key=keys.ssh_public_line,
                                   tls_public_key_pem=keys.tls_public_pem,
                                   advertise_addrs=["127.0.0.1:3022"])  # fmt: skip


def iam_join(
    auth: RunningAuth, name: str = "i-node", token: str = RULE_NAME
) -> pb.AgentCredentials:
    with auth.client() as anon:
        reply = register_by_iam(anon.rpc, registration(name, token), aws_signer(None))
    return reply.credentials


Tamper = Callable[[pb.SignedSTSRequest, str], list[pb.RegisterUsingIAMMethodRequest]]


def tampered_join(auth: RunningAuth, tamper: Tamper, name: str = "i-node") -> None:
    """A stream whose answers to the challenge are ``tamper``'s, signed by botocore."""
    signer = aws_signer(None)
    with auth.client() as anon:
        challenge: list[str] = []
        got = threading.Event()

        def requests() -> Iterator[pb.RegisterUsingIAMMethodRequest]:
            yield pb.RegisterUsingIAMMethodRequest(register=registration(name))
            assert got.wait(20)
            yield from tamper(signer.sign(challenge[0]), challenge[0])

        for reply in anon.rpc.RegisterUsingIAMMethod(requests()):
            if reply.WhichOneof("step") == "challenge":
                challenge.append(reply.challenge)
                got.set()
            else:
                raise AssertionError("credentials for a tampered join")


def nodes(auth: RunningAuth) -> list[str]:
    return [k for k in keys_under(auth, "agents/") if not k.startswith("agents/local-admin")]


def answer(signed: pb.SignedSTSRequest) -> pb.RegisterUsingIAMMethodRequest:
    return pb.RegisterUsingIAMMethodRequest(sts_request=signed)


def test_a_node_joins_with_an_instance_roles_session(
    auth: RunningAuth, as_role: AWSCredentials, tmp_path: Path, moto: MotoSTS
) -> None:
    iam_token(auth)
    assert auth.server.cas is not None
    request = JoinRequest(token="aws-prod", auth_server=auth.addr,
                          ca_pin=auth.server.cas.host_x509.pin, name="i-node", labels={},
                          advertise_addrs=["127.0.0.1:3022"], join_method="iam")  # fmt: skip
    identity = join(request, tmp_path / "node")
    assert identity.labels == {"cloud": "aws"} and identity.name == "i-node"
    record = auth.call(lambda: auth.server.agents.get(identity.agent_id))
    assert (record.kind, record.join_identity) == ("node", moto.role_arn)
    (event,) = audit_events(auth, "join")
    fields = json.loads(event.fields_json)
    assert (fields["method"], fields["token_name"], fields["aws_arn"], fields["aws_account"]) == (
        "iam", "aws-prod", moto.role_arn, ACCOUNT,
    )  # fmt: skip
    with auth.admin() as admin:  # reusable: still listed after the join
        (token,) = admin.rpc.ListTokens(pb.ListTokensRequest()).tokens
    assert (token.name, token.join_method, token.allow[0].aws_arn) == ("aws-prod", "iam", ROLE_GLOB)


def test_an_iam_user_joins_by_its_arn_and_the_same_instance_rejoins(
    auth: RunningAuth, moto: MotoSTS, monkeypatch: pytest.MonkeyPatch
) -> None:
    use(moto.user, monkeypatch)
    iam_token(auth, aws_account=ACCOUNT, aws_arn=moto.user_arn)
    first = iam_join(auth)
    # Its data dir lost, the same identity joins again under the same name: the same node.
    again = iam_join(auth)
    assert again.agent_id == first.agent_id and len(nodes(auth)) == 1
    joins = [json.loads(e.fields_json)["rejoin"] for e in audit_events(auth, "join")]
    assert sorted(joins) == [False, True]
    # Another identity that a rule admits finds the name taken.
    iam_token(auth, name="any-in-account", aws_account=ACCOUNT)
    use(moto.role_session, monkeypatch)
    with pytest.raises(AlreadyExists, match="already registered"):
        iam_join(auth, token="any-in-account")
    assert len(nodes(auth)) == 1


@pytest.mark.parametrize(
    "rule",
    [{"aws_account": "210987654321"},
     {"aws_account": ACCOUNT, "aws_arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/other/*"},
     {"aws_account": ACCOUNT, "aws_arn": f"arn:aws:iam::{ACCOUNT}:role/mezd-nodes"}],
    ids=["account", "role", "iam-role-arn"],
)  # fmt: skip
def test_an_identity_outside_the_rules_is_refused_and_audited_with_its_arn(
    auth: RunningAuth, as_role: AWSCredentials, moto: MotoSTS, rule: dict[str, str]
) -> None:
    iam_token(auth, **rule)
    with pytest.raises(AccessDenied, match="not admitted"):
        iam_join(auth)
    assert nodes(auth) == []
    (failed,) = audit_events(auth, "join.failed")
    assert json.loads(failed.fields_json)["aws_arn"] == moto.role_arn


def test_expired_deleted_and_wrong_kind_tokens_are_one_error(
    auth: RunningAuth, as_role: AWSCredentials, clock: FakeClock
) -> None:
    iam_token(auth, name="short", ttl=60)
    iam_token(auth, name="gone")
    iam_token(auth, name="for-proxies", type="proxy")
    with auth.admin() as admin:
        admin.rpc.DeleteToken(pb.DeleteTokenRequest(name="gone"))
    clock.advance(61)
    messages = set()
    for name in ("short", "gone", "for-proxies", "never-made", "0123456789abcdef"):
        with pytest.raises(NotAuthenticated) as info:
            iam_join(auth, token=name)
        messages.add(info.value.message)
    assert messages == {"invalid or expired IAM join token"}
    assert nodes(auth) == [] and len(audit_events(auth, "join.failed")) == 5


def test_a_wrong_secret_is_refused_by_sts(
    auth: RunningAuth, moto: MotoSTS, monkeypatch: pytest.MonkeyPatch
) -> None:
    use(AWSCredentials(moto.user.access_key, "not-the-secret-key-0123456789abcdefghij"),
        monkeypatch)  # fmt: skip
    iam_token(auth, aws_account=ACCOUNT)
    with pytest.raises(NotAuthenticated, match="AWS STS refused the signed request"):
        iam_join(auth)
    assert nodes(auth) == [] and len(audit_events(auth, "join.failed")) == 1


def _unsigned_challenge(
    signed: pb.SignedSTSRequest, challenge: str
) -> list[pb.RegisterUsingIAMMethodRequest]:
    """The challenge added after signing, as a relay that kept a signature would."""
    auth_header = signed.headers["Authorization"].replace(";x-mezite-challenge", "")
    signed.headers["Authorization"] = auth_header
    return [answer(signed)]


def _host(signed: pb.SignedSTSRequest, challenge: str) -> list[pb.RegisterUsingIAMMethodRequest]:
    signed.headers["Host"] = "sts.amazonaws.com.evil.example"
    return [answer(signed)]


def _twice(signed: pb.SignedSTSRequest, challenge: str) -> list[pb.RegisterUsingIAMMethodRequest]:
    wrong = pb.SignedSTSRequest()
    wrong.CopyFrom(signed)
    wrong.headers["X-Mezite-Challenge"] = "x" * 43
    return [answer(wrong), answer(signed)]  # a second answer after a wrong first


@pytest.mark.parametrize(
    ("tamper", "message"),
    [(_unsigned_challenge, "does not sign x-mezite-challenge"), (_host, "not an AWS STS host"),
     (_twice, "another challenge")],
    ids=["unsigned-challenge", "host", "second-answer"],
)  # fmt: skip
def test_tampered_answers_are_refused_before_sts_sees_them(
    auth: RunningAuth, as_role: AWSCredentials, tamper: Tamper, message: str
) -> None:
    iam_token(auth)
    with pytest.raises(MeziteError, match=message):
        tampered_join(auth, tamper)
    assert nodes(auth) == [] and len(audit_events(auth, "join.failed")) == 1


def test_a_challenge_from_another_stream_is_refused(
    auth: RunningAuth, as_role: AWSCredentials
) -> None:
    iam_token(auth)
    signer = aws_signer(None)
    with auth.client() as anon:
        other = iter(anon.rpc.RegisterUsingIAMMethod(iter([
            pb.RegisterUsingIAMMethodRequest(register=registration("other"))
        ])))  # fmt: skip
        elsewhere = next(other).challenge

        def reuse(
            signed: pb.SignedSTSRequest, challenge: str
        ) -> list[pb.RegisterUsingIAMMethodRequest]:
            return [answer(signer.sign(elsewhere))]

        with pytest.raises(NotAuthenticated, match="another challenge"):
            tampered_join(auth, reuse)
    assert nodes(auth) == []


def test_a_stale_signature_is_refused_by_auth_itself(
    auth: RunningAuth, as_role: AWSCredentials, clock: FakeClock
) -> None:
    """moto does not check X-Amz-Date's age (real STS does, at 15 minutes): auth must."""
    iam_token(auth)
    clock.advance(6 * 60)
    with pytest.raises(NotAuthenticated, match="stale"):
        iam_join(auth)
    assert nodes(auth) == []


def test_a_stream_that_stalls_past_the_challenge_is_ended(
    auth: RunningAuth, as_role: AWSCredentials, monkeypatch: pytest.MonkeyPatch
) -> None:
    iam_token(auth)
    monkeypatch.setattr(IAMJoinService, "challenge_ttl", 0.5)

    def stall(
        signed: pb.SignedSTSRequest, challenge: str
    ) -> list[pb.RegisterUsingIAMMethodRequest]:
        threading.Event().wait(2.0)
        return [answer(signed)]

    with pytest.raises(NotAuthenticated, match="challenge expired"):
        tampered_join(auth, stall)
    assert nodes(auth) == [] and len(audit_events(auth, "join.failed")) == 1


def test_a_bad_registration_is_refused_before_any_challenge(
    auth: RunningAuth, as_role: AWSCredentials
) -> None:
    iam_token(auth)
    with pytest.raises(BadParameter, match="invalid node name"):
        iam_join(auth, name="Not A Name")
    with pytest.raises(BadParameter, match="is the proxy's name"):
        iam_join(auth, name="proxy")  # the same name rules as a token join
    with auth.client() as anon, pytest.raises(BadParameter, match="registration, then"):
        list(anon.rpc.RegisterUsingIAMMethod(iter([answer(pb.SignedSTSRequest())])))
    assert nodes(auth) == []


def test_a_proxy_joins_by_iam_with_its_server_certificate(
    auth: RunningAuth, as_role: AWSCredentials
) -> None:
    from proto.keys import new_tls_key

    iam_token(auth, name="aws-proxies", type="proxy")
    request = registration("edge-1", "aws-proxies")
    request.tls_server_public_key_pem = new_tls_key().public_pem
    request.advertise_addrs[:] = ["proxy.example.com:443"]
    with auth.client() as anon:
        creds = register_by_iam(anon.rpc, request, aws_signer(None)).credentials
    assert creds.tls_server_certificate_pem
    record = auth.call(lambda: auth.server.agents.get(creds.agent_id))
    assert record.kind == "proxy"


def test_a_lone_proxy_first_start_joins_by_iam(
    auth: RunningAuth, as_role: AWSCredentials, tmp_path: Path, moto: MotoSTS
) -> None:
    from tests.integration.test_lone_proxy import lone_proxy, pin, proxy_config

    iam_token(auth, name="aws-proxies", type="proxy")
    config = proxy_config(auth, tmp_path / "proxy", join_token="aws-proxies",
                          join_method="iam", ca_pin=pin(auth))  # fmt: skip
    with lone_proxy(auth, config) as proxy:
        record = auth.call(lambda: auth.server.agents.get(proxy.identity.agent_id))
    assert (record.kind, record.name, record.join_identity) == ("proxy", "edge-1", moto.role_arn)
