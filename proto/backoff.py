"""Retry delays: exponential with full jitter, so a fleet reconnecting after an auth
restart spreads out instead of arriving at once."""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, base: float = 1.0, cap: float = 60.0) -> None:
        self._base = base
        self._cap = cap
        self._attempt = 0

    def next(self) -> float:
        delay = min(self._cap, self._base * 2**self._attempt)
        self._attempt = min(self._attempt + 1, 30)
        return random.uniform(delay / 2, delay)

    def reset(self) -> None:
        self._attempt = 0


def jittered(interval: float, spread: float = 0.2) -> float:
    """``interval`` give or take ``spread`` of it."""
    return interval * random.uniform(1 - spread, 1 + spread)
