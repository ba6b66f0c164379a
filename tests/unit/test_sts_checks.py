"""What auth checks in an IAM join before and after STS answers (server/auth/sts.py), and
the iam token's rules (server/auth/stores/iam_tokens.py): pure functions, no botocore.
The same checks against a real STS peer (moto) are in tests/integration/test_iam_join.py."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from cli.mezctl_admin import parse_rule
from proto.errors import BadParameter, ConnectionProblem, MeziteError, NotAuthenticated
from proto.v1 import auth_pb2 as pb
from server.auth.stores.iam_tokens import AWSRule, validate_iam_name
from server.auth.sts import GET_CALLER_IDENTITY, check_request, parse_identity, sts_host_region

NOW = time.time()
CHALLENGE = "c" * 43


def signed(**changes: str | None) -> pb.SignedSTSRequest:
    """A request shaped like botocore's, with ``changes`` (None removes a header)."""
    date = datetime.fromtimestamp(NOW, UTC).strftime("%Y%m%dT%H%M%SZ")
    headers = {
        "Host": "sts.eu-west-1.amazonaws.com",
        "X-Amz-Date": date,
        "X-Mezite-Challenge": CHALLENGE,
        "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
        "Authorization": (
            f"AWS4-HMAC-SHA256 Credential=ASIAEXAMPLEEXAMPLE12/{date[:8]}/eu-west-1/sts/"
            "aws4_request, SignedHeaders=content-type;host;x-amz-date;x-mezite-challenge, "
            "Signature=" + "ab" * 32
        ),
    }
    for name, value in changes.items():
        header = name.replace("_", "-")
        if value is None:
            headers.pop(header, None)
        else:
            headers[header] = value
    return pb.SignedSTSRequest(body=GET_CALLER_IDENTITY, headers=headers)


def test_a_well_formed_request_forwards_only_its_signed_headers() -> None:
    checked = check_request(signed(**{"User_Agent": "x"}), CHALLENGE, NOW)
    assert checked.host == "sts.eu-west-1.amazonaws.com"
    assert sorted(checked.headers) == [
        "authorization", "content-type", "host", "x-amz-date", "x-mezite-challenge",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("host", "region"),
    [("sts.amazonaws.com", "us-east-1"), ("sts.us-east-2.amazonaws.com", "us-east-2"),
     ("sts-fips.us-west-1.amazonaws.com", "us-west-1"),
     ("sts.cn-north-1.amazonaws.com.cn", "cn-north-1"),
     ("sts.us-gov-west-1.amazonaws.com", "us-gov-west-1")],
)  # fmt: skip
def test_sts_hosts_of_every_partition_are_allowed(host: str, region: str) -> None:
    assert sts_host_region(host) == region


@pytest.mark.parametrize(
    "host",
    ["sts.amazonaws.com.evil.example", "evil.example", "sts.amazonaws.com:443",
     "STS.amazonaws.com", "sts.eu-west-1.amazonaws.com.cn", "sts.cn-north-1.amazonaws.com",
     "s3.amazonaws.com", "127.0.0.1", "sts.amazonaws.com/", "xsts.amazonaws.com",
     "sts.evil.amazonaws.com", "169.254.169.254", ""],
)  # fmt: skip
def test_any_other_host_is_refused(host: str) -> None:
    with pytest.raises(BadParameter, match="not an AWS STS host"):
        sts_host_region(host)


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (signed(Host="sts.amazonaws.com.evil.example"), "not an AWS STS host"),
        (signed(Host=None), "not an AWS STS host"),
        (signed(host="sts.eu-west-1.amazonaws.com"), "twice"),  # Host and host
        (signed(Authorization="Basic abc"), "not AWS SigV4"),
        (signed(Authorization=None), "not AWS SigV4"),
        (signed(X_Mezite_Challenge="d" * 43), "another challenge"),
        (signed(X_Mezite_Challenge=None), "not in the request"),
        (signed(X_Amz_Date="20200101T000000Z"), "date and credential scope differ"),
        (signed(X_Amz_Date="yesterday"), "malformed"),
    ],
    ids=["host", "no-host", "duplicate", "basic", "no-auth", "challenge", "no-challenge",
         "scope-date", "bad-date"],
)  # fmt: skip
def test_malformed_requests_are_refused_with_one_line(
    request_: pb.SignedSTSRequest, message: str
) -> None:
    with pytest.raises(MeziteError, match=message):
        check_request(request_, CHALLENGE, NOW)


def test_every_required_header_must_be_signed() -> None:
    base = signed().headers["Authorization"]
    for header in ("host", "x-amz-date", "x-mezite-challenge"):
        unsigned = base.replace(f";{header}", "").replace(f"{header};", "")
        with pytest.raises(BadParameter, match=f"does not sign {header}"):
            check_request(signed(Authorization=unsigned), CHALLENGE, NOW)


def test_the_signature_must_be_for_sts_in_the_hosts_region() -> None:
    base = signed().headers["Authorization"]
    for wrong in (base.replace("/sts/", "/s3/"), base.replace("/eu-west-1/", "/us-east-1/")):
        with pytest.raises(BadParameter, match="not sts in eu-west-1"):
            check_request(signed(Authorization=wrong), CHALLENGE, NOW)


def test_stale_and_future_signatures_are_refused() -> None:
    check_request(signed(), CHALLENGE, NOW + 299)
    for skew in (301, -301):
        with pytest.raises(NotAuthenticated, match="stale"):
            check_request(signed(), CHALLENGE, NOW + skew)


def test_only_get_caller_identity_and_bounded_headers() -> None:
    other = signed()
    other.body = b"Action=AssumeRole&Version=2011-06-15"
    with pytest.raises(BadParameter, match="not sts:GetCallerIdentity"):
        check_request(other, CHALLENGE, NOW)
    many = signed(**{f"X_Extra_{i}": "x" for i in range(30)})
    with pytest.raises(BadParameter, match="more than"):
        check_request(many, CHALLENGE, NOW)
    with pytest.raises(BadParameter, match="too long"):
        check_request(signed(X_Extra="x" * 5000), CHALLENGE, NOW)


XML = (
    b'<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
    b"<GetCallerIdentityResult><Arn>arn:aws:sts::123456789012:assumed-role/r/i-0abc</Arn>"
    b"<UserId>AROA:i-0abc</UserId><Account>123456789012</Account></GetCallerIdentityResult>"
    b"</GetCallerIdentityResponse>"
)


def test_sts_answers_are_read_strictly() -> None:
    who = parse_identity(200, "text/xml", XML)
    assert (who.account, who.arn) == (
        "123456789012",
        "arn:aws:sts::123456789012:assumed-role/r/i-0abc",
    )
    json_answer = (
        b'{"GetCallerIdentityResponse": {"GetCallerIdentityResult": {"Account": "123456789012",'
        b' "Arn": "arn:aws:iam::123456789012:user/node1", "UserId": "AIDA"}}}'
    )
    assert parse_identity(200, "application/json", json_answer).arn.endswith("user/node1")
    for bad in (
        XML.replace(b"123456789012</Account>", b"210987654321</Account>"),  # ARN elsewhere
        XML.replace(b"GetCallerIdentityResponse", b"AssumeRoleResponse"),
        b'<!DOCTYPE x [<!ENTITY a "b">]>' + XML,
        XML.replace(b"</Arn>", b"</Arn><Arn>arn:aws:iam::123456789012:user/x</Arn>"),
        b"not xml",
    ):
        with pytest.raises(ConnectionProblem):
            parse_identity(200, "text/xml", bad)
    refused = b"<ErrorResponse><Error><Code>SignatureDoesNotMatch</Code></Error></ErrorResponse>"
    with pytest.raises(NotAuthenticated, match="SignatureDoesNotMatch"):
        parse_identity(403, "text/xml", refused)


def test_rules_match_exactly_and_globs_need_an_account() -> None:
    role = AWSRule.parse("123456789012", "arn:aws:sts::123456789012:assumed-role/mezd-nodes/*")
    assert role.matches("123456789012", "arn:aws:sts::123456789012:assumed-role/mezd-nodes/i-1")
    assert not role.matches("123456789012", "arn:aws:sts::123456789012:assumed-role/Mezd-Nodes/i")
    assert not role.matches("123456789012", "arn:aws:sts::123456789012:assumed-role/mezd-nodesX")
    assert not role.matches("210987654321", "arn:aws:sts::210987654321:assumed-role/mezd-nodes/i")
    brackets = AWSRule.parse("123456789012", "arn:aws:iam::123456789012:user/[ab]")
    assert not brackets.matches("123456789012", "arn:aws:iam::123456789012:user/a")
    assert AWSRule.parse("123456789012", "").matches("123456789012", "arn:aws:iam::123456789012:x")
    for account, arn, message in (
        ("", "arn:aws:sts::*:assumed-role/x/*", "needs an account"),
        ("", "", "needs an account, an ARN"),
        ("1234", "", "12 digits"),
        ("123456789012", "arn:aws:iam::210987654321:user/x", "not in account"),
        ("", "arn:aws:ec2::123456789012:instance/i", "invalid ARN"),
    ):
        with pytest.raises(BadParameter, match=message):
            AWSRule.parse(account, arn)


def test_the_cli_reads_rules_whose_arn_holds_commas() -> None:
    assert parse_rule("account=123456789012,arn=arn:aws:iam::123456789012:role/a,b") == (
        "123456789012", "arn:aws:iam::123456789012:role/a,b",
    )  # fmt: skip
    assert parse_rule("account=123456789012") == ("123456789012", "")
    for bad in ("acct=1", "account=1,account=2", "123456789012"):
        with pytest.raises(BadParameter, match="invalid --allow"):
            parse_rule(bad)


def test_iam_token_names_cannot_pose_as_one_time_tokens() -> None:
    assert validate_iam_name("aws-prod") == "aws-prod"
    for bad in ("0123456789abcdef", "AWS", "-x", "a" * 64, "a b"):
        with pytest.raises(BadParameter):
            validate_iam_name(bad)
