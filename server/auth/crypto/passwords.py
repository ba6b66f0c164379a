"""Password hashing (Argon2id via argon2-cffi) off the event loop.

Verification always does the same work: an unknown user is verified against a dummy
hash made with the same parameters, so timing does not tell unknown from wrong.

Hashes run on threads of their own, one per core, at a lower scheduling priority than
the event loop's thread: idle, logins use every core; in a login storm the loop still
gets the CPU whenever it has work, so the other RPCs keep their latency (with asyncio's
default pool, six hashing threads on two cores took IssueUserCerts' p99 from 6 ms to
323 ms). argon2-cffi releases the GIL while it hashes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from proto import limits
from proto.errors import BadParameter

MIN_PASSWORD_LEN = 8
MAX_PASSWORD_BYTES = limits.MAX_PASSWORD_BYTES

# Argon2id, 32 MiB, 2 passes, 1 lane: above OWASP's minimum (19 MiB, t=2, p=1) in memory
# at the same passes, ~55 ms of one core per hash here (docs/rfd/0013-password-hashing.md).
TIME_COST, MEMORY_KIB, PARALLELISM = 2, 32 * 1024, 1
_hasher = PasswordHasher(time_cost=TIME_COST, memory_cost=MEMORY_KIB, parallelism=PARALLELISM)
_DUMMY_HASH = _hasher.hash("mezite-dummy-password-for-timing")
HASHING_NICE = 10  # added to a hashing thread's nice value: the loop's thread comes first

T = TypeVar("T")
_pool: ThreadPoolExecutor | None = None


def _lower_priority() -> None:
    # Linux keeps a nice value per thread (a new thread starts with its creator's);
    # raising one's own needs no privilege.
    tid = threading.get_native_id()
    with contextlib.suppress(OSError):
        nice = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(19, nice + HASHING_NICE))


async def _off_loop(fn: Callable[..., T], *args: object) -> T:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(
            max_workers=os.cpu_count() or 1, thread_name_prefix="argon2",
            initializer=_lower_priority,
        )  # fmt: skip
    return await asyncio.get_running_loop().run_in_executor(_pool, fn, *args)


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
    return await _off_loop(_hasher.hash, password)


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
    return await _off_loop(_verify, stored_hash, password)


async def rehash_password(password: str) -> str:
    """A new hash of a password that just verified (not validated again: an earlier
    release's rules may have let it in, and it stays the user's password)."""
    return await _off_loop(_hasher.hash, password)


def needs_rehash(stored_hash: str) -> bool:
    """Whether a hash that just verified was made with other parameters (an earlier
    release's): the login that proved the password stores it again with these."""
    try:
        return _hasher.check_needs_rehash(stored_hash)
    except InvalidHashError:
        return False
