"""Retry delays, one implementation for every reconnect loop: exponential up to a cap,
jittered so a fleet reconnecting after an auth restart spreads out instead of arriving
in step. ``BackoffPolicy.keep`` is the share of each bound a delay keeps at least: 0 is
full jitter (anywhere in [0, bound]), 0.5 the older "equal jitter" ([bound/2, bound]).

``StreamBackoff`` is the rule for long-lived streams, which only ever end with an error:
a stream that was acknowledged and stayed up ``healthy_after`` seconds resets the
backoff, so one restart of auth does not lengthen the wait after the next."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

Uniform = Callable[[float, float], float]


@dataclass(frozen=True)
class BackoffPolicy:
    base: float = 1.0
    cap: float = 60.0
    keep: float = 0.5
    healthy_after: float = 0.0


# Nodes must be listed again within 10 s of a short auth restart: full jitter, capped
# at 5 s; a stream up 2 s after its first ack counts as healthy (a stream that flaps
# right after its ack keeps backing off instead of looping).
HEARTBEAT = BackoffPolicy(base=0.5, cap=5.0, keep=0.0, healthy_after=2.0)


class Backoff:
    def __init__(
        self,
        base: float = 1.0,
        cap: float = 60.0,
        *,
        policy: BackoffPolicy | None = None,
        uniform: Uniform = random.uniform,
    ) -> None:
        self.policy = policy or BackoffPolicy(base=base, cap=cap)
        self._uniform = uniform
        self.attempt = 0

    def bound(self) -> float:
        """The longest the next delay can be."""
        return float(min(self.policy.cap, self.policy.base * 2**self.attempt))

    def next(self) -> float:
        bound = self.bound()
        self.attempt = min(self.attempt + 1, 30)
        return self._uniform(bound * self.policy.keep, bound)

    def reset(self) -> None:
        self.attempt = 0


class StreamBackoff:
    """Delays between attempts of one long-lived stream (see the module docstring)."""

    def __init__(
        self,
        policy: BackoffPolicy,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        uniform: Uniform = random.uniform,
    ) -> None:
        self.backoff = Backoff(policy=policy, uniform=uniform)
        self._monotonic = monotonic
        self._acked_at: float | None = None

    def opened(self) -> None:
        self._acked_at = None

    def acknowledged(self) -> None:
        if self._acked_at is None:
            self._acked_at = self._monotonic()

    def ended(self) -> float:
        """The stream ended (cleanly or not): seconds to wait before the next attempt."""
        acked, self._acked_at = self._acked_at, None
        healthy_after = self.backoff.policy.healthy_after
        if acked is not None and self._monotonic() - acked >= healthy_after:
            self.backoff.reset()
        return self.backoff.next()


def jittered(interval: float, spread: float = 0.2) -> float:
    """``interval`` give or take ``spread`` of it."""
    return interval * random.uniform(1 - spread, 1 + spread)
