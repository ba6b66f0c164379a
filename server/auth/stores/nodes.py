"""The node catalog: every registered node's record, mirrored in memory from the backend
(kept current by a watch), joined with in-memory presence. Listing 50k nodes never reads
the backend."""

from __future__ import annotations

import asyncio
import base64
import bisect
import contextlib
import itertools
import logging
from collections.abc import Callable, Mapping
from typing import NamedTuple

from proto import limits
from proto.errors import BadParameter, MeziteError
from proto.kinds import AgentKind
from server.auth.stores.agents import AGENTS_PREFIX, AgentRecord, AgentStore
from server.auth.stores.presence import PresenceView
from server.backend import Backend, EventType

log = logging.getLogger(__name__)

DEFAULT_PAGE = 500
MAX_PAGE = limits.MAX_PAGE


class NodeView(NamedTuple):
    """An online node: its record and its presence (a tuple: a walk of 50,000 nodes
    builds one per node, at half a frozen dataclass's cost)."""

    record: AgentRecord
    addr: str
    last_seen: float
    seen_from: str = ""


def _page_key(name: str, agent_id: str) -> str:
    return base64.urlsafe_b64encode(f"{name}\0{agent_id}".encode()).decode()


def _parse_page_key(token: str) -> tuple[str, str]:
    try:
        name, sep, agent_id = base64.urlsafe_b64decode(token.encode()).decode().partition("\0")
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadParameter("malformed page token") from exc
    if not sep or len(token) > 512:
        raise BadParameter("malformed page token")
    return name, agent_id


class NodeCatalog:
    def __init__(self, backend: Backend, agents: AgentStore, presence: PresenceView) -> None:
        self._backend = backend
        self._agents = agents
        self.presence = presence
        self._nodes: dict[str, AgentRecord] = {}
        self._sorted: list[AgentRecord] | None = None  # by (name, id); rebuilt on change
        # Each record's encoding for the API, made once per version of the record.
        self._encoded: dict[str, tuple[AgentRecord, bytes]] = {}
        self._watch_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        ready = asyncio.Event()
        self._watch_task = asyncio.create_task(self._watch(ready))
        await ready.wait()

    async def stop(self) -> None:
        if self._watch_task is not None:
            self._watch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch_task

    def _remember(self, record: AgentRecord) -> None:
        if record.kind == AgentKind.NODE:
            self._nodes[record.id] = record
            self._sorted = None

    def encoded(self, record: AgentRecord, encode: Callable[[AgentRecord], bytes]) -> bytes:
        """``encode(record)``, computed once per version of the record (a changed or
        deleted record's encoding is never returned: the record is compared by identity)."""
        cached = self._encoded.get(record.id)
        if cached is not None and cached[0] is record:
            return cached[1]
        data = encode(record)
        if self._nodes.get(record.id) is record:  # only what the catalog holds is kept
            self._encoded[record.id] = (record, data)
        return data

    def _in_order(self) -> list[AgentRecord]:
        if self._sorted is None:
            self._sorted = sorted(self._nodes.values(), key=lambda r: (r.name, r.id))
        return self._sorted

    def _named(self, name: str) -> list[AgentRecord]:
        """The records named ``name`` or with the id ``name``, by (name, id)."""
        ordered = self._in_order()
        lo = bisect.bisect_left(ordered, name, key=lambda r: r.name)
        hi = bisect.bisect_right(ordered, name, lo=lo, key=lambda r: r.name)
        found = ordered[lo:hi]
        by_id = self._nodes.get(name)
        if by_id is not None and by_id.name != name:
            found = sorted([*found, by_id], key=lambda r: (r.name, r.id))
        return found

    async def _watch(self, ready: asyncio.Event) -> None:
        while True:
            try:
                async with self._backend.watch([AGENTS_PREFIX]) as watcher:
                    async for event in watcher:
                        if event.type is EventType.INIT:
                            # (Re)read everything once the watch is in place: no change
                            # between the read and the watch can be missed.
                            records = await self._agents.list()
                            self._nodes = {r.id: r for r in records if r.kind == AgentKind.NODE}
                            self._sorted = None
                            self._encoded = {}
                            ready.set()
                        elif event.type is EventType.PUT:
                            self._remember(AgentRecord.decode(event.item.value))
                        else:
                            agent_id = event.item.key.removeprefix(AGENTS_PREFIX)
                            self._nodes.pop(agent_id, None)
                            self._encoded.pop(agent_id, None)
                            self._sorted = None
                            self.presence.drop(agent_id)
            except MeziteError as err:
                log.warning("node watch restarted: %s", err.message)
                ready.set()
                await asyncio.sleep(1)

    def by_name(self, name: str) -> AgentRecord | None:
        return next((n for n in self._nodes.values() if n.name == name), None)

    def get(self, agent_id: str) -> AgentRecord | None:
        return self._nodes.get(agent_id)

    def online(
        self,
        *,
        labels: Mapping[str, str],
        allowed: Callable[[Mapping[str, str], str], bool],
        limit: int,
        page_token: str,
        name: str = "",
    ) -> tuple[list[NodeView], str]:
        """One page of online nodes, sorted by (name, id), that carry ``labels`` and
        that ``allowed(labels, id)`` lets the caller see; only the one named or with the
        id ``name``, when given (found without a walk of the catalog)."""
        if limit < 0:
            raise BadParameter("limit must not be negative")
        limit = min(limit or DEFAULT_PAGE, MAX_PAGE)
        after = _parse_page_key(page_token) if page_token else None
        ordered = self._named(name) if name else self._in_order()
        start = bisect.bisect_right(ordered, after, key=lambda r: (r.name, r.id)) if after else 0
        views: list[NodeView] = []
        present = self.presence.get
        wanted = list(labels.items())
        for record in itertools.islice(ordered, start, None):
            entry = present(record.id)
            if entry is None:
                continue
            if wanted and any(record.labels.get(k) != v for k, v in wanted):
                continue
            if not allowed(record.labels, record.id):
                continue
            views.append(NodeView(record, entry.addr, entry.last_seen, entry.seen_from))
            if len(views) > limit:
                break
        if len(views) > limit:
            last = views[limit - 1].record
            return views[:limit], _page_key(last.name, last.id)
        return views, ""
