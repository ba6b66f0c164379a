"""IAM join tokens: named rules on AWS identities, not secrets.

An ``iam`` token admits a node (or a proxy) whose AWS identity, as STS's
GetCallerIdentity names it, matches one of its rules. It holds nothing secret, so it is
stored as it is shown, and it is reusable until it expires or an admin removes it.

A rule sets an account, an ARN, or both; each field set must match. An ARN may be a glob
where ``*`` matches any run of characters (nothing else is special, and case counts), and
a glob needs the account too, so that ``arn:aws:sts::*`` cannot admit every AWS account
in the world. STS names an instance role as ``arn:aws:sts::ACCT:assumed-role/ROLE/SESSION``
(for EC2 the session is the instance id), never as the role's ``arn:aws:iam::`` ARN.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from proto.clock import Clock
from proto.errors import AlreadyExists, BadParameter, NotAuthenticated, NotFound
from server.auth.stores.join_tokens import TOKEN_TYPES, validate_labels
from server.backend import Backend, Item, prefix_range

IAM_PREFIX = "iam_tokens/"
MAX_RULES = 16
MAX_IAM_TTL = 10 * 365 * 24 * 3600.0
# One error for a name that is not a live iam token of the right kind: which way it
# failed would tell a prober which names exist.
IAM_TOKEN_FAILED = "invalid or expired IAM join token"  # noqa: S105 - a message
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
ONE_TIME_NAME = re.compile(r"[a-f0-9]{16}")
_ACCOUNT_RE = re.compile(r"[0-9]{12}")
# arn:PARTITION:SERVICE::ACCOUNT:RESOURCE, as STS returns it for users and roles.
_ARN_RE = re.compile(r"arn:(aws|aws-cn|aws-us-gov):(iam|sts)::([0-9]{12}|\*):[!-~]{1,200}")


def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


@dataclass(frozen=True)
class AWSRule:
    account: str = ""
    arn: str = ""

    @classmethod
    def parse(cls, account: str, arn: str) -> AWSRule:
        account, arn = account.strip(), arn.strip()
        if not account and not arn:
            raise BadParameter("an IAM rule needs an account, an ARN, or both")
        if account and not _ACCOUNT_RE.fullmatch(account):
            raise BadParameter(f"invalid AWS account {account[:32]!r}: 12 digits")
        if arn:
            match = _ARN_RE.fullmatch(arn)
            if match is None:
                raise BadParameter(
                    f"invalid ARN {arn[:80]!r}",
                    hint="e.g. arn:aws:sts::123456789012:assumed-role/mezd-nodes/*",
                )
            if "*" in arn and not account:
                raise BadParameter(
                    f"the ARN glob {arn[:80]!r} needs an account too",
                    hint="add account=... to the rule",
                )
            if account and match.group(3) not in (account, "*"):
                raise BadParameter(f"the ARN {arn[:80]!r} is not in account {account}")
        return cls(account=account, arn=arn)

    def matches(self, account: str, arn: str) -> bool:
        if self.account and self.account != account:
            return False
        return not self.arn or _glob(self.arn).fullmatch(arn) is not None

    def __str__(self) -> str:
        return ",".join(f"{k}={v}" for k, v in (("account", self.account), ("arn", self.arn)) if v)


@dataclass(frozen=True)
class IAMToken:
    name: str
    type: str  # node or proxy: the kind of agent it joins
    expires: float  # 0: until removed
    labels: Mapping[str, str]
    allow: tuple[AWSRule, ...]

    def admits(self, account: str, arn: str) -> bool:
        return any(rule.matches(account, arn) for rule in self.allow)

    def live(self, now: float) -> bool:
        return not self.expires or now < self.expires


def validate_iam_name(name: str) -> str:
    if not _NAME_RE.fullmatch(name) or ONE_TIME_NAME.fullmatch(name):
        raise BadParameter(
            f"invalid IAM token name {name[:64]!r}",
            hint="up to 63 lower-case letters, digits and '-', not 16 hex digits "
            "(those name one-time tokens)",
        )
    return name


class IAMTokens:
    def __init__(self, backend: Backend, clock: Clock) -> None:
        self._backend = backend
        self._clock = clock

    async def create(
        self,
        name: str,
        type: str,
        ttl: float,
        labels: Mapping[str, str],
        allow: Sequence[AWSRule],
    ) -> IAMToken:
        validate_iam_name(name)
        if type not in TOKEN_TYPES:
            raise BadParameter(f"unknown token type {type[:32]!r}; use node or proxy")
        if not 1 <= len(allow) <= MAX_RULES:
            raise BadParameter(f"an IAM token needs 1 to {MAX_RULES} --allow rules")
        if ttl and not 60 <= ttl <= MAX_IAM_TTL:
            raise BadParameter("an IAM token's TTL must be between 1 minute and 10 years")
        expires = self._clock.now() + ttl if ttl else 0.0
        token = IAMToken(name, type, expires, validate_labels(labels), tuple(allow))
        doc = {
            "type": type,
            "labels": dict(token.labels),
            "allow": [{"account": r.account, "arn": r.arn} for r in token.allow],
        }
        item = Item(key=IAM_PREFIX + name, value=json.dumps(doc).encode(), expires=expires or None)
        try:
            await self._backend.create(item)
        except AlreadyExists:
            raise AlreadyExists(
                f"an IAM token named {name!r} exists", hint="remove it first, or pick a name"
            ) from None
        return token

    async def get(self, name: str, expected_type: str) -> IAMToken:
        """The live iam token ``name`` of ``expected_type``; one error otherwise."""
        try:
            token = self._decode(await self._backend.get(IAM_PREFIX + validate_iam_name(name)))
        except (NotFound, BadParameter):
            raise NotAuthenticated(IAM_TOKEN_FAILED) from None
        if token.type != expected_type or not token.live(self._clock.now()):
            raise NotAuthenticated(IAM_TOKEN_FAILED)
        return token

    async def list(self) -> list[IAMToken]:
        items = await self._backend.get_range(*prefix_range(IAM_PREFIX))
        return [self._decode(item) for item in items]

    async def delete(self, name: str) -> None:
        try:
            await self._backend.delete(IAM_PREFIX + validate_iam_name(name))
        except (NotFound, BadParameter):
            raise NotFound(f"token {name[:64]!r} not found") from None

    @staticmethod
    def _decode(item: Item) -> IAMToken:
        doc = json.loads(item.value)
        return IAMToken(
            name=item.key.removeprefix(IAM_PREFIX),
            type=doc["type"],
            expires=item.expires or 0.0,
            labels=doc["labels"],
            allow=tuple(AWSRule(r["account"], r["arn"]) for r in doc["allow"]),
        )
