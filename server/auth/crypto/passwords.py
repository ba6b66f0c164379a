"""Password hashing (Argon2id via argon2-cffi) off the event loop.

Verification always does the same work: an unknown user is verified against a dummy
hash made with the same parameters, so timing does not tell unknown from wrong."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from proto import limits
from proto.errors import BadParameter

MIN_PASSWORD_LEN = 8
MAX_PASSWORD_BYTES = limits.MAX_PASSWORD_BYTES

_hasher = PasswordHasher()  # Argon2id, argon2-cffi's RFC 9106 low-memory profile
_DUMMY_HASH = _hasher.hash("mezite-dummy-password-for-timing")


def validate_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LEN:
        raise BadParameter(f"password must be at least {MIN_PASSWORD_LEN} characters")
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise BadParameter(f"password must be at most {MAX_PASSWORD_BYTES} bytes")
    if any(ord(c) < 32 or ord(c) == 127 for c in password):
        raise BadParameter("password must not contain control characters")
    return password


async def hash_password(password: str) -> str:
    validate_password(password)
    return await asyncio.to_thread(_hasher.hash, password)


def _verify(stored: str | None, password: str) -> bool:
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        password = ""  # still hash something, but never the oversized input
    try:
        ok = _hasher.verify(stored or _DUMMY_HASH, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    return ok and stored is not None


async def verify_password(stored_hash: str | None, password: str) -> bool:
    """True only for a real hash that matches; ``None`` (no user, no password set) is
    verified against the dummy hash and is always False."""
    return await asyncio.to_thread(_verify, stored_hash, password)
