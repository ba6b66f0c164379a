"""Items under a few prefixes kept in memory by a watch, for reads on every call's path
(the guard's session lookup, a certificate's user and roles) that should not wait on
storage.

A read is answered from memory only while the mirror is in step:

- its watch is open and its first load is done (else: storage, as without a mirror);
- it has taken every event already delivered (at the read, not at its consumer's next
  turn), and its watcher has been delivered every write this instance committed under
  its prefixes: a write made here is read back at once, on SQLite and on PostgreSQL
  alike (where this instance's own writes come back through the change feed a round
  trip later; until then, storage);
- the key is there and live. A key that is absent reads storage: it may have been
  written through another auth server a moment ago.

What changes through another auth server on the same PostgreSQL reaches memory with
the change feed, as it reaches the lock and node caches: woken by NOTIFY at commit,
read at least every second. Until then this server answers from what it had, for
updates and deletions (a logout there, a role edit) as for everything the feed carries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Protocol

from proto.errors import MeziteError

from .base import Backend, Event, EventType, Item, Watcher, is_live, prefix_range

log = logging.getLogger(__name__)

QUEUE_SIZE = 1 << 17  # events the watcher may hold before the mirror must reload
RETRY_DELAY = 1.0


class Reads(Protocol):
    """What a store reads single items through: the backend itself, or a mirror of it."""

    async def get(self, key: str) -> Item: ...


class Mirror:
    def __init__(self, backend: Backend, prefixes: Sequence[str]) -> None:
        self._backend = backend
        self._prefixes = tuple(prefixes)
        self._items: dict[str, Item] = {}
        self._watcher: Watcher | None = None
        self._loaded = False
        self._task: asyncio.Task[None] | None = None
        self.memory_reads = 0
        self.storage_reads = 0

    async def start(self) -> None:
        """Returns once the first load is done (or failed: reads go to storage until
        a later one succeeds)."""
        ready = asyncio.Event()
        self._task = asyncio.create_task(self._follow(ready), name="mirror-watch")
        await ready.wait()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def get(self, key: str) -> Item:
        """``Backend.get``, from memory when the mirror is in step."""
        if self._in_step():
            item = self._items.get(key)
            if item is not None and is_live(item, self._backend.clock.now()):
                self.memory_reads += 1
                return item
        self.storage_reads += 1
        return await self._backend.get(key)

    def _in_step(self) -> bool:
        watcher = self._watcher
        if watcher is None or not self._loaded or watcher.closed:
            return False
        for event in watcher.take_ready():
            self._apply(event)
        return watcher.current

    async def _follow(self, ready: asyncio.Event) -> None:
        while True:
            try:
                async with self._backend.watch(self._prefixes, queue_size=QUEUE_SIZE) as watcher:
                    async for event in watcher:
                        if event.type is EventType.INIT:
                            await self._load()
                            self._watcher = watcher
                            ready.set()
                        else:
                            self._apply(event)
            except MeziteError as err:
                log.warning("%s watch restarted: %s", "/".join(self._prefixes), err.message)
            finally:
                self._watcher, self._loaded = None, False
            ready.set()
            await asyncio.sleep(RETRY_DELAY)

    async def _load(self) -> None:
        """Everything under the prefixes, read after the watch began: events delivered
        meanwhile are applied on top, older ones skipped by revision."""
        self._loaded = False
        items: dict[str, Item] = {}
        for prefix in self._prefixes:
            for item in await self._backend.get_range(*prefix_range(prefix)):
                items[item.key] = item
        self._items = items
        self._loaded = True

    def _apply(self, event: Event) -> None:
        key, revision = event.item.key, event.item.revision
        held = self._items.get(key)
        if held is not None and held.revision >= revision:
            return  # the load already read this key as of a later write
        if event.type is EventType.PUT:
            self._items[key] = event.item
        elif event.type is EventType.DELETE:
            self._items.pop(key, None)
