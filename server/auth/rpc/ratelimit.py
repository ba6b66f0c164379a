"""Per-peer token buckets for unauthenticated RPCs (logins, joins, invites): an address
gets ``per_minute`` calls a minute, with bursts up to the same number."""

from __future__ import annotations

from collections import OrderedDict

from proto.clock import Clock
from proto.errors import LimitExceeded

MAX_TRACKED_PEERS = 10_000


class RateLimiter:
    def __init__(self, clock: Clock, per_minute: int) -> None:
        self._clock = clock
        self._capacity = float(per_minute)
        self._rate = per_minute / 60.0
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def check(self, peer: str) -> None:
        now = self._clock.now()
        tokens, last = self._buckets.pop(peer, (self._capacity, now))
        tokens = min(self._capacity, tokens + (now - last) * self._rate)
        if tokens < 1.0:
            self._buckets[peer] = (tokens, now)
            raise LimitExceeded(
                "too many requests from this address", hint="wait a minute and try again"
            )
        self._buckets[peer] = (tokens - 1.0, now)
        while len(self._buckets) > MAX_TRACKED_PEERS:
            self._buckets.popitem(last=False)
