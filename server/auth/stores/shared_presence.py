"""Node presence across several auth servers on one store (the PostgreSQL backend).

A node heartbeats to one auth server, which keeps its presence in memory
(``PresenceTable``). For the others to list it, presence reaches the backend, but only
when it changes, never per beat:

- each auth server holds a lease, ``auth_servers/<id>``, that expires unless renewed
  (one write every ``LEASE / 3`` seconds per auth server, whatever the node count);
- when a node comes online at an auth server, or moves, that server writes
  ``presence/<node id>`` naming itself; when the node goes offline there, the server
  deletes the item if it is still its own;
- every auth server watches both prefixes. Another server's presence item counts while
  that server's lease lives, so the nodes of an auth server that died drop out with
  its lease, without anyone cleaning up after it.

``SharedPresence`` has the ``PresenceTable`` interface the catalog and the node RPCs use.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from dataclasses import dataclass

from proto.clock import Clock
from proto.errors import CompareFailed, MeziteError, NotFound
from server.auth.stores.presence import Presence, PresenceTable
from server.backend import Backend, EventType, Item, prefix_range

log = logging.getLogger(__name__)

PRESENCE_PREFIX = "presence/"
SERVERS_PREFIX = "auth_servers/"
LEASE = 30.0  # seconds an auth server's nodes stay listed elsewhere after it stops renewing
RECONCILE_INTERVAL = 1.0


@dataclass(frozen=True)
class _Remote:
    addr: str
    owner: str
    since: float
    seen_from: str = ""


class SharedPresence:
    def __init__(self, backend: Backend, local: PresenceTable, clock: Clock) -> None:
        self.server_id = uuid.uuid4().hex
        self._backend = backend
        self._local = local
        self._clock = clock
        self.ttl = local.ttl
        self._announced: dict[str, Item] = {}  # what we wrote, per node id
        self._remote: dict[str, _Remote] = {}
        self._leases: dict[str, float] = {}  # auth server id -> lease expiry
        self._changed = asyncio.Event()
        self._reconciling = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []

    # --- the PresenceTable interface

    def beat(self, agent_id: str, addr: str, seen_from: str = "") -> bool:
        fresh = self._local.beat(agent_id, addr, seen_from)
        if fresh:
            self._changed.set()
        return fresh

    def get(self, agent_id: str) -> Presence | None:
        entry = self._local.get(agent_id)
        if entry is not None:
            return entry
        remote = self._remote.get(agent_id)
        if remote is None or remote.owner == self.server_id:
            return None
        lease = self._leases.get(remote.owner, 0.0)
        if lease <= self._clock.now():
            return None
        return Presence(
            addr=remote.addr, last_seen=remote.since, expires=lease, seen_from=remote.seen_from
        )

    def drop(self, agent_id: str) -> None:
        self._local.drop(agent_id)
        self._remote.pop(agent_id, None)
        self._changed.set()

    def online(self) -> dict[str, Presence]:
        found = {aid: p for aid in self._remote if (p := self.get(aid)) is not None}
        return found | self._local.online()

    # --- running

    async def start(self) -> None:
        await self.renew_lease()
        ready = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._watch(ready), name="presence-watch"),
            asyncio.create_task(self._keep_lease(), name="presence-lease"),
            asyncio.create_task(self._reconcile_forever(), name="presence-sync"),
        ]
        await ready.wait()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        # Best effort: the lease would expire anyway.
        with contextlib.suppress(MeziteError):
            for item in list(self._announced.values()):
                with contextlib.suppress(CompareFailed, NotFound):
                    await self._backend.compare_and_delete(item)
            await self._backend.delete(SERVERS_PREFIX + self.server_id)

    async def renew_lease(self) -> None:
        await self._backend.put(
            Item(SERVERS_PREFIX + self.server_id, b"{}", expires=self._clock.now() + LEASE)
        )

    async def _keep_lease(self) -> None:
        while True:
            await asyncio.sleep(LEASE / 3)
            try:
                await self.renew_lease()
            except MeziteError as err:
                log.warning("cannot renew this auth server's presence lease: %s", err.message)

    async def _reconcile_forever(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(RECONCILE_INTERVAL):
                    await self._changed.wait()
            self._changed.clear()
            try:
                await self.reconcile()
            except MeziteError as err:
                log.warning("presence not yet shared with other auth servers: %s", err.message)

    async def reconcile(self) -> None:
        """Make the backend say what the local table says: announce nodes that came
        online or moved here, withdraw those that went offline. One pass at a time."""
        async with self._reconciling:
            await self._reconcile()

    async def _reconcile(self) -> None:
        online = self._local.online()
        for agent_id, item in list(self._announced.items()):
            if agent_id not in online:
                with contextlib.suppress(CompareFailed, NotFound):  # someone else's now
                    await self._backend.compare_and_delete(item)
                del self._announced[agent_id]
        for agent_id, entry in online.items():
            held = self._announced.get(agent_id)
            doc = {"addr": entry.addr, "seen_from": entry.seen_from}
            if held is not None and _where(json.loads(held.value)) == doc:
                continue
            value = json.dumps(doc | {"auth": self.server_id, "since": entry.last_seen}).encode()
            self._announced[agent_id] = await self._backend.put(
                Item(PRESENCE_PREFIX + agent_id, value)
            )

    async def _watch(self, ready: asyncio.Event) -> None:
        while True:
            try:
                async with self._backend.watch([PRESENCE_PREFIX, SERVERS_PREFIX]) as watcher:
                    async for event in watcher:
                        if event.type is EventType.INIT:
                            await self._reload()
                            ready.set()
                        elif event.type is EventType.PUT:
                            self._apply(event.item)
                        else:
                            self._forget(event.item.key)
            except MeziteError as err:
                log.warning("presence watch restarted: %s", err.message)
                ready.set()
                await asyncio.sleep(1)

    async def _reload(self) -> None:
        self._remote, self._leases = {}, {}
        for prefix in (SERVERS_PREFIX, PRESENCE_PREFIX):
            for item in await self._backend.get_range(*prefix_range(prefix)):
                self._apply(item)

    def _apply(self, item: Item) -> None:
        if item.key.startswith(SERVERS_PREFIX):
            self._leases[item.key.removeprefix(SERVERS_PREFIX)] = item.expires or 0.0
            return
        try:
            doc = json.loads(item.value)
            remote = _Remote(
                str(doc["addr"]), str(doc["auth"]), float(doc["since"]),
                str(doc.get("seen_from", "")),
            )  # fmt: skip
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed presence item %s", item.key[:80])
            return
        self._remote[item.key.removeprefix(PRESENCE_PREFIX)] = remote

    def _forget(self, key: str) -> None:
        if key.startswith(SERVERS_PREFIX):
            self._leases.pop(key.removeprefix(SERVERS_PREFIX), None)
        else:
            self._remote.pop(key.removeprefix(PRESENCE_PREFIX), None)


def _where(doc: dict[str, object]) -> dict[str, object]:
    """Where an announced node is: what a change of makes a new announcement."""
    return {"addr": doc.get("addr"), "seen_from": doc.get("seen_from", "")}
