"""One-time secrets handed to people and machines: join tokens, invites, bootstrap and
renewal tokens.

A token reads ``<name>.<secret>``: the name is public (listings, audit, `tokens rm`), the
secret (256 random bits) is stored only as a SHA-256 hash and compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field

from proto.errors import NotAuthenticated

_TOKEN_RE = re.compile(r"([a-f0-9]{16})\.([A-Za-z0-9_-]{43})")


@dataclass(frozen=True)
class SecretToken:
    name: str
    secret: str = field(repr=False)

    @property
    def text(self) -> str:
        return f"{self.name}.{self.secret}"

    @property
    def secret_hash(self) -> str:
        return hash_secret(self.secret)


@dataclass(frozen=True)
class PendingToken:
    """A one-time token waiting in its owner's record (a user's invite, an agent
    identity's bootstrap token): the token's public name, its secret's hash, its expiry.
    One per owner, so issuing a new one voids the old, and deleting the owner deletes it."""

    name: str
    hash: str
    expires: float

    def redeemable(self, token: SecretToken, now: float) -> bool:
        return token.name == self.name and secret_matches(token, self.hash) and now < self.expires


def new_token() -> SecretToken:
    return SecretToken(name=secrets.token_hex(8), secret=secrets.token_urlsafe(32))


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_token(text: str, what: str = "token") -> SecretToken:
    """Split a token as typed; anything malformed is the same NotAuthenticated as a wrong
    one, so probing the format teaches nothing."""
    match = _TOKEN_RE.fullmatch(text.strip()) if len(text) < 128 else None
    if match is None:
        raise NotAuthenticated(f"invalid or expired {what}")
    return SecretToken(name=match.group(1), secret=match.group(2))


def secret_matches(token: SecretToken, stored_hash: str) -> bool:
    return hmac.compare_digest(token.secret_hash, stored_hash)
