"""Account lockout: after N failed logins within a window the account is locked for a
while, and during the lock even the right password gets the generic error. State lives
in the backend, so every auth server of a cluster agrees."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass

from proto.clock import Clock
from proto.errors import AlreadyExists, CompareFailed, NotFound
from server.backend import Backend, Item

LOCKOUT_PREFIX = "lockouts/"


@dataclass(frozen=True)
class LockoutPolicy:
    attempts: int = 5
    window: float = 30 * 60.0
    duration: float = 30 * 60.0


class LoginLockout:
    def __init__(self, backend: Backend, clock: Clock, policy: LockoutPolicy) -> None:
        self._backend = backend
        self._clock = clock
        self._policy = policy

    async def locked_until(self, user: str) -> float:
        """When the lock on ``user`` ends; 0 when not locked."""
        try:
            doc = json.loads((await self._backend.get(LOCKOUT_PREFIX + user)).value)
        except NotFound:
            return 0.0
        until = float(doc.get("locked_until", 0.0))
        return until if until > self._clock.now() else 0.0

    async def record_failure(self, user: str) -> bool:
        """Count one failure; True when this failure locked the account."""
        key = LOCKOUT_PREFIX + user
        policy = self._policy
        for _ in range(20):
            now = self._clock.now()
            try:
                item: Item | None = await self._backend.get(key)
            except NotFound:
                item = None
            stored = json.loads(item.value) if item else {}
            until = float(stored.get("locked_until", 0.0))
            failures = [float(t) for t in stored.get("failures", []) if t > now - policy.window]
            failures.append(now)
            locks = len(failures) >= policy.attempts and until <= now
            if locks:
                failures, until = [], now + policy.duration
            doc = {"failures": failures, "locked_until": until}
            expires = max(now + policy.window, until) + 1
            fresh = Item(key=key, value=json.dumps(doc).encode(), expires=expires)
            try:
                if item is None:
                    await self._backend.create(fresh)
                else:
                    await self._backend.compare_and_swap(item, fresh)
            except (CompareFailed, AlreadyExists):
                continue
            return locks
        return False

    async def clear(self, user: str) -> None:
        with contextlib.suppress(NotFound):
            await self._backend.delete(LOCKOUT_PREFIX + user)
