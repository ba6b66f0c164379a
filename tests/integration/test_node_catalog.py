"""The node catalog's per-record encoding (ListNodes encodes a record's fields once): a
record that changes in the backend is encoded again, one that is deleted is forgotten,
and an encoding is never handed out for a record it was not made from. Real SQLite
backend, real watch."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from proto.clock import FakeClock
from proto.kinds import AgentKind
from server.auth.stores.agents import AgentRecord, AgentStore
from server.auth.stores.nodes import NodeCatalog
from server.auth.stores.presence import PresenceTable
from server.backend import SQLiteBackend


def encode(record: AgentRecord) -> bytes:
    return json.dumps([record.name, record.labels]).encode()


async def settled(catalog: NodeCatalog, agent_id: str, want: AgentRecord | None) -> None:
    for _ in range(200):
        if catalog.get(agent_id) == want:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the catalog never saw {want}")


def listed(catalog: NodeCatalog) -> list[AgentRecord]:
    views, _ = catalog.online(labels={}, allowed=lambda _l, _i: True, limit=0, page_token="")
    return [v.record for v in views]


async def test_an_encoding_follows_its_record(tmp_path: Path) -> None:
    calls: list[str] = []

    def counted(record: AgentRecord) -> bytes:
        calls.append(record.name)
        return encode(record)

    async with SQLiteBackend(tmp_path / "backend.sqlite") as backend:
        agents = AgentStore(backend)
        presence = PresenceTable(FakeClock())
        catalog = NodeCatalog(backend, agents, presence)
        await catalog.start()
        try:
            web = AgentRecord(id="n1", kind=AgentKind.NODE, name="web", created=1.0,
                              labels={"env": "prod"})  # fmt: skip
            await agents.put(web)
            await settled(catalog, "n1", web)
            presence.beat("n1", "127.0.0.1:3022")
            (current,) = listed(catalog)
            assert catalog.encoded(current, counted) == encode(web)
            assert catalog.encoded(current, counted) == encode(web)
            assert calls == ["web"], "encoded once per version of the record"

            moved = AgentRecord(id="n1", kind=AgentKind.NODE, name="web", created=1.0,
                                labels={"env": "dev"})  # fmt: skip
            await agents.put(moved)
            await settled(catalog, "n1", moved)
            (current,) = listed(catalog)
            assert catalog.encoded(current, counted) == encode(moved)
            # The old record object is never answered with the new one's bytes, nor
            # the other way round.
            assert catalog.encoded(web, counted) == encode(web)
            assert catalog.encoded(current, counted) == encode(moved)

            await agents.delete("n1")
            await settled(catalog, "n1", None)
            assert listed(catalog) == []
            calls.clear()
            assert catalog.encoded(moved, counted) == encode(moved)
            assert catalog.encoded(moved, counted) == encode(moved)
            assert calls == ["web", "web"], "a deleted record's encoding is not kept"
        finally:
            await catalog.stop()
