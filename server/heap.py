"""Garbage collection for a server whose heap is mostly long-lived connection state.

CPython's full (generation 2) collection walks every container object with the GIL
held, and runs each time a quarter more objects have survived since the last one. In
auth with a fleet connected that is the fleet's connection state: ~1.1 M objects and
~1 s per walk at 5,000 node agents, during which every heartbeat waits (B4's ack p99
was 848 ms at 5,000 agents and 4 s at 19,400).

What survives a full collection is, nearly all, state that lives as long as its
connection, and reference counting frees it when the connection goes. So right after
each full collection the survivors are frozen (``gc.freeze``: moved to the permanent
generation, which collections skip) and the next full collection walks only what became
long-lived since (~50 ms at 5,000 agents). The cost: a reference cycle among frozen
objects is not collected while frozen (1,000 agents that disconnected left 134 such
objects), so every ``RECLAIM_EVERY`` seconds everything is unfrozen and walked once."""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any

log = logging.getLogger(__name__)

RECLAIM_EVERY = 3600.0  # seconds between full walks of the frozen heap
OLDEST = 2  # the generation a full collection collects


class HeapFreezer:
    """Freezes the survivors of every full collection while installed."""

    def install(self) -> None:
        if self._after_collection not in gc.callbacks:
            gc.callbacks.append(self._after_collection)

    def uninstall(self) -> None:
        if self._after_collection in gc.callbacks:
            gc.callbacks.remove(self._after_collection)

    def reclaim(self) -> int:
        """Unfreeze and collect everything once (the survivors are frozen again);
        returns how many unreachable objects were found."""
        gc.unfreeze()
        found = gc.collect()
        log.debug("heap walked: %d unreachable, %d frozen", found, gc.get_freeze_count())
        return found

    async def reclaim_periodically(self, every: float = RECLAIM_EVERY) -> None:
        while True:
            await asyncio.sleep(every)
            self.reclaim()

    @staticmethod
    def _after_collection(phase: str, info: dict[str, Any]) -> None:
        if phase == "stop" and info["generation"] == OLDEST:
            gc.freeze()
