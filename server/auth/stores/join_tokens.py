"""Join tokens for nodes and proxies: one-time, expiring, stored hashed. Redeeming one is
a conditional delete in the same transaction as what it grants, so of any number of
concurrent redemptions exactly one wins, and a token is spent only by a join that
committed."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from proto import limits
from proto.clock import Clock
from proto.errors import BadParameter, CompareFailed, NotAuthenticated, NotFound
from server.auth.stores.secret_tokens import SecretToken, new_token, parse_token, secret_matches
from server.backend import Backend, Condition, Delete, Item, prefix_range
from server.backend.atomic import Action

TOKENS_PREFIX = "tokens/"
TOKEN_TYPES = frozenset({"node", "proxy"})
DEFAULT_TOKEN_TTL = 30 * 60.0
MAX_TOKEN_TTL = 7 * 24 * 3600.0
MAX_LABELS = limits.MAX_LABELS
_LABEL_KEY_RE = re.compile(limits.LABEL_KEY_PATTERN)
_LABEL_VALUE_RE = re.compile(limits.LABEL_VALUE_PATTERN)
# Expired, deleted, already used, wrong type, wrong secret: one error.
TOKEN_FAILED = "invalid, expired or already used join token"  # noqa: S105 - a message


def validate_labels(labels: Mapping[str, str]) -> dict[str, str]:
    if len(labels) > MAX_LABELS:
        raise BadParameter(f"at most {MAX_LABELS} labels")
    for key, value in labels.items():
        if not _LABEL_KEY_RE.fullmatch(key) or not _LABEL_VALUE_RE.fullmatch(value):
            raise BadParameter(f"invalid label {key[:64]!r}={value[:64]!r}")
    return dict(labels)


@dataclass(frozen=True)
class JoinToken:
    name: str
    type: str
    expires: float
    labels: Mapping[str, str]


@dataclass(frozen=True)
class Redeemable:
    """A checked, unspent token: what it grants, the item to spend, its secret's hash."""

    token: JoinToken
    item: Item
    secret_hash: str = field(repr=False)


class JoinTokens:
    def __init__(self, backend: Backend, clock: Clock) -> None:
        self._backend = backend
        self._clock = clock

    async def create(
        self, type: str, ttl: float, labels: Mapping[str, str]
    ) -> tuple[SecretToken, JoinToken]:
        if type not in TOKEN_TYPES:
            raise BadParameter(f"unknown token type {type[:32]!r}; use node or proxy")
        ttl = ttl or DEFAULT_TOKEN_TTL
        if not 60 <= ttl <= MAX_TOKEN_TTL:
            raise BadParameter("token TTL must be between 1 minute and 7 days")
        token = new_token()
        expires = self._clock.now() + ttl
        checked = validate_labels(labels)
        doc = {"type": type, "hash": token.secret_hash, "labels": checked}
        await self._backend.create(
            Item(key=TOKENS_PREFIX + token.name, value=json.dumps(doc).encode(), expires=expires)
        )
        return token, JoinToken(token.name, type, expires, checked)

    async def list(self) -> list[JoinToken]:
        items = await self._backend.get_range(*prefix_range(TOKENS_PREFIX))
        return [self._decode(item) for item in items]

    async def delete(self, name: str) -> None:
        if not re.fullmatch(r"[a-f0-9]{16}", name):
            raise NotFound(f"token {name[:32]!r} not found")
        try:
            await self._backend.delete(TOKENS_PREFIX + name)
        except NotFound:
            raise NotFound(f"token {name!r} not found") from None

    async def check(self, text: str, expected_type: str | frozenset[str]) -> Redeemable:
        """The token ``text`` if it is live, of ``expected_type`` (or one of several
        types) and its secret matches; nothing is spent until ``redeem``."""
        allowed = {expected_type} if isinstance(expected_type, str) else expected_type
        # One error for every way a token can fail (wrong kind included): which way
        # would tell a guesser that a token name exists.
        try:
            secret = parse_token(text, "join token")
            item = await self._backend.get(TOKENS_PREFIX + secret.name)
        except (NotFound, NotAuthenticated):
            raise NotAuthenticated(TOKEN_FAILED) from None
        doc = json.loads(item.value)
        if not secret_matches(secret, doc["hash"]) or doc["type"] not in allowed:
            raise NotAuthenticated(TOKEN_FAILED)
        return Redeemable(self._decode(item), item, doc["hash"])

    async def redeem(
        self, token: Redeemable, actions: Sequence[Action], conditions: Sequence[Condition] = ()
    ) -> None:
        """Spend ``token`` and write ``actions`` in one transaction: of any number of
        concurrent redemptions exactly one commits, and a crash leaves either both the
        token unspent and nothing written, or neither."""
        try:
            await self._backend.atomic_write(
                [Condition.unchanged(token.item), *conditions],
                [Delete(token.item.key), *actions],
            )
        except CompareFailed:
            raise NotAuthenticated(TOKEN_FAILED) from None

    @staticmethod
    def _decode(item: Item) -> JoinToken:
        doc = json.loads(item.value)
        return JoinToken(
            name=item.key.removeprefix(TOKENS_PREFIX),
            type=doc["type"],
            expires=item.expires or 0.0,
            labels=doc["labels"],
        )
