"""The IAM join's proof: an ``sts:GetCallerIdentity`` request the node signed with its AWS
credentials over auth's challenge, which auth checks and then sends to AWS STS itself.

STS checks the signature; it does not know what Mezite needs, so auth checks that first:
the body is exactly GetCallerIdentity; ``Host`` is an AWS STS host (``STS_HOST``: global,
regional, FIPS, China and GovCloud) and the request goes there only, over HTTPS, built
from that host alone (never from a URL a client sent); ``host``, ``x-amz-date`` and
``x-mezite-challenge`` are all signed (a header added after signing would pass STS); the
challenge is this stream's; the signature is SigV4 for ``sts`` in the host's region and
at most ``MAX_SKEW`` old (STS allows 15 minutes); header names appear once, whatever
their case; counts and sizes are bounded. Only the signed headers are forwarded.

``endpoint_override`` (the server's config, never a request) sends the request to
another base URL with the signed ``Host`` kept: for a test peer (moto) or a VPC endpoint.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from xml.etree import ElementTree

from proto.clock import Clock
from proto.errors import BadParameter, ConnectionProblem, NotAuthenticated
from proto.v1 import auth_pb2 as pb

log = logging.getLogger(__name__)

CHALLENGE_HEADER = "x-mezite-challenge"
GET_CALLER_IDENTITY = b"Action=GetCallerIdentity&Version=2011-06-15"
MAX_HEADERS = 24
MAX_HEADER_NAME = 64
MAX_HEADER_VALUE = 4096
MAX_SKEW = 5 * 60.0
MAX_RESPONSE_BYTES = 64 * 1024
STS_TIMEOUT = 10.0
_REGION = r"(?:us|eu|ap|sa|ca|me|af|il|mx|cn|us-gov)-[a-z]+-[0-9]"
STS_HOST = re.compile(rf"sts(?:-fips)?(?:\.(?P<region>{_REGION}))?\.amazonaws\.com(?P<cn>\.cn)?")
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[A-Z0-9]{16,128})/(?P<date>[0-9]{8})/"
    r"(?P<region>[a-z0-9-]{1,32})/(?P<service>[a-z0-9-]{1,32})/aws4_request, ?"
    r"SignedHeaders=(?P<signed>[a-z0-9-]+(?:;[a-z0-9-]+)*), ?Signature=(?P<sig>[0-9a-f]{64})"
)
_MUST_SIGN = frozenset({"host", "x-amz-date", CHALLENGE_HEADER})
_ARN = re.compile(r"arn:(aws|aws-cn|aws-us-gov):(iam|sts)::([0-9]{12}):[!-~]{1,400}")
_NS = "{https://sts.amazonaws.com/doc/2011-06-15/}"


@dataclass(frozen=True)
class AWSIdentity:
    """Who STS says signed: the account and the caller's ARN."""

    account: str
    arn: str


@dataclass(frozen=True)
class CheckedRequest:
    host: str
    headers: dict[str, str]  # lower-case names, only what is forwarded
    body: bytes


def sts_host_region(host: str) -> str:
    """The region a well-formed STS host serves; BadParameter for any other host."""
    match = STS_HOST.fullmatch(host)
    region = match.group("region") if match else None
    if match is None or bool(match.group("cn")) != bool(region and region.startswith("cn-")):
        raise BadParameter(
            f"the signed request is for {host[:80]!r}, not an AWS STS host",
            hint="sign for sts.REGION.amazonaws.com (`mezd join --aws-region`)",
        )
    return region or "us-east-1"


def check_request(request: pb.SignedSTSRequest, challenge: str, now: float) -> CheckedRequest:
    """Everything auth can check before it sends the request to STS."""
    if request.body != GET_CALLER_IDENTITY:
        raise BadParameter("the signed request is not sts:GetCallerIdentity")
    if len(request.headers) > MAX_HEADERS:
        raise BadParameter(f"the signed request has more than {MAX_HEADERS} headers")
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        if len(name) > MAX_HEADER_NAME or len(value) > MAX_HEADER_VALUE:
            raise BadParameter("a header of the signed request is too long")
        if name.lower() in headers:
            raise BadParameter(f"the signed request has the header {name[:64]!r} twice")
        headers[name.lower()] = value
    host = headers.get("host", "")
    region = sts_host_region(host)
    auth = _AUTHORIZATION.fullmatch(headers.get("authorization", ""))
    if auth is None:
        raise BadParameter("the signed request's Authorization is not AWS SigV4")
    if auth.group("service") != "sts" or auth.group("region") != region:
        raise BadParameter(
            f"the request is signed for {auth.group('service')} in {auth.group('region')}, "
            f"not sts in {region}"
        )
    signed = auth.group("signed").split(";")
    missing = sorted(_MUST_SIGN - set(signed))
    if missing:
        raise BadParameter(f"the signed request does not sign {', '.join(missing)}")
    absent = [name for name in signed if name not in headers]
    if absent:
        raise BadParameter(f"the signed header {absent[0]!r} is not in the request")
    if not hmac.compare_digest(headers[CHALLENGE_HEADER].encode(), challenge.encode()):
        raise NotAuthenticated("the signed request answers another challenge")
    _check_date(headers["x-amz-date"], auth.group("date"), now)
    forwarded = {name: headers[name] for name in signed}
    forwarded["authorization"] = headers["authorization"]
    return CheckedRequest(host=host, headers=forwarded, body=request.body)


def _check_date(amz_date: str, scope_date: str, now: float) -> None:
    try:
        signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise BadParameter("the signed request's X-Amz-Date is malformed") from None
    if not amz_date.startswith(scope_date):
        raise BadParameter("the signed request's date and credential scope differ")
    if abs(signed_at.timestamp() - now) > MAX_SKEW:
        raise NotAuthenticated(
            "the signed request is stale or from the future (X-Amz-Date more than 5 minutes "
            "from auth's clock)",
            hint="check the node's clock",
        )


def parse_identity(status: int, content_type: str, body: bytes) -> AWSIdentity:
    """STS's answer, strictly: XML (STS's default, and moto's only form) or JSON."""
    if status != 200:
        raise NotAuthenticated(f"AWS STS refused the signed request: {_error_code(body)}")
    try:
        if "json" in content_type:
            result = json.loads(body)["GetCallerIdentityResponse"]["GetCallerIdentityResult"]
            account, arn = result["Account"], result["Arn"]
        else:
            if b"<!" in body:  # no DTD, no entities: STS sends neither
                raise ValueError("a document type declaration")
            root = ElementTree.fromstring(body)  # noqa: S314 - bounded, and no DTD
            if root.tag != f"{_NS}GetCallerIdentityResponse":
                raise ValueError(root.tag)
            account = _one(root, f"{_NS}GetCallerIdentityResult/{_NS}Account")
            arn = _one(root, f"{_NS}GetCallerIdentityResult/{_NS}Arn")
    except (ValueError, KeyError, TypeError, ElementTree.ParseError):
        raise ConnectionProblem("AWS STS sent an answer auth cannot read") from None
    match = _ARN.fullmatch(arn) if isinstance(arn, str) else None
    if match is None or match.group(3) != account:
        raise ConnectionProblem("AWS STS named an identity auth cannot read")
    return AWSIdentity(account=account, arn=arn)


def _one(root: ElementTree.Element, path: str) -> str:
    found = root.findall(path)
    if len(found) != 1 or not found[0].text:
        raise ValueError(path)
    return found[0].text.strip()


def _error_code(body: bytes) -> str:
    match = re.search(rb"<Code>([A-Za-z.]{1,64})</Code>", body[:MAX_RESPONSE_BYTES])
    return match.group(1).decode() if match else "no reason given"


class STSClient:
    """Sends checked requests to STS (or to ``endpoint_override``) and reads the answer."""

    def __init__(self, clock: Clock, endpoint_override: str | None = None) -> None:
        self._clock = clock
        self._override = endpoint_override.rstrip("/") if endpoint_override else None

    async def identify(self, request: pb.SignedSTSRequest, challenge: str) -> AWSIdentity:
        import httpx

        checked = check_request(request, challenge, self._clock.now())
        url = f"{self._override or 'https://' + checked.host}/"
        headers = {**checked.headers, "accept": "application/json"}
        try:
            async with (
                httpx.AsyncClient(follow_redirects=False, timeout=STS_TIMEOUT) as client,
                client.stream("POST", url, headers=headers, content=checked.body) as reply,
            ):
                body = await _bounded(reply)
                status, content_type = reply.status_code, reply.headers.get("content-type", "")
        except httpx.HTTPError as exc:
            log.warning("AWS STS at %s did not answer: %s", url, exc)
            raise ConnectionProblem(f"auth could not reach AWS STS at {checked.host}") from None
        return parse_identity(status, content_type, body)


async def _bounded(reply: object) -> bytes:
    import httpx

    assert isinstance(reply, httpx.Response)
    chunks, size = [], 0
    async for chunk in reply.aiter_bytes():
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise ConnectionProblem("AWS STS's answer is too large")
        chunks.append(chunk)
    return b"".join(chunks)
