"""Node presence, in memory: heartbeats refresh an expiry here and never touch the
backend (at 50k nodes a beat a minute each, that would be a write every millisecond).

A node is online while its last beat is younger than the TTL. Expired entries are
dropped lazily on read and by ``sweep``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from proto.clock import Clock

DEFAULT_PRESENCE_TTL = 90.0


@dataclass
class Presence:
    addr: str  # what the node claims to serve SSH at
    last_seen: float
    expires: float
    seen_from: str = ""  # the IP auth saw its heartbeats come from


class PresenceView(Protocol):
    """What the node catalog and the node RPCs need of presence: this table, or
    ``SharedPresence`` when several auth servers share a store."""

    ttl: float

    def beat(self, agent_id: str, addr: str, seen_from: str = "") -> bool: ...

    def get(self, agent_id: str) -> Presence | None: ...

    def drop(self, agent_id: str) -> None: ...

    def online(self) -> dict[str, Presence]: ...


class PresenceTable:
    def __init__(self, clock: Clock, ttl: float = DEFAULT_PRESENCE_TTL) -> None:
        self._clock = clock
        self.ttl = ttl
        self._entries: dict[str, Presence] = {}

    def beat(self, agent_id: str, addr: str, seen_from: str = "") -> bool:
        """Record a beat; True when the node was not online before (or moved)."""
        now = self._clock.now()
        old = self._entries.get(agent_id)
        fresh = old is None or old.expires <= now or (old.addr, old.seen_from) != (addr, seen_from)
        self._entries[agent_id] = Presence(
            addr=addr, last_seen=now, expires=now + self.ttl, seen_from=seen_from
        )
        return fresh

    def get(self, agent_id: str) -> Presence | None:
        entry = self._entries.get(agent_id)
        if entry is None:
            return None
        if entry.expires <= self._clock.now():
            del self._entries[agent_id]
            return None
        return entry

    def drop(self, agent_id: str) -> None:
        self._entries.pop(agent_id, None)

    def sweep(self) -> list[str]:
        """Forget expired nodes; returns their ids."""
        now = self._clock.now()
        gone = [aid for aid, entry in self._entries.items() if entry.expires <= now]
        for aid in gone:
            del self._entries[aid]
        return gone

    def online(self) -> dict[str, Presence]:
        self.sweep()
        return dict(self._entries)
