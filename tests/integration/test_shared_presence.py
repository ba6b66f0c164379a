"""Node presence shared by two auth servers on one PostgreSQL store: nodes that
heartbeat to one are listed by the other, heartbeats themselves never write, and a
dead auth server's nodes drop out with its lease."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest

from proto.clock import FakeClock
from server.auth.stores.presence import PresenceTable
from server.auth.stores.shared_presence import LEASE, PRESENCE_PREFIX, SharedPresence
from server.backend.postgres import PostgresBackend
from tests.pg import PostgresServer


@dataclass
class Pair:
    a: SharedPresence
    b: SharedPresence
    backend: PostgresBackend
    clock: FakeClock


@pytest.fixture
async def pair(postgres: PostgresServer) -> AsyncIterator[Pair]:
    dsn, clock = postgres.fresh_dsn(), FakeClock()
    async with PostgresBackend(dsn, clock) as first, PostgresBackend(dsn, clock) as second:
        a = SharedPresence(first, PresenceTable(clock), clock)
        b = SharedPresence(second, PresenceTable(clock), clock)
        await a.start()
        await b.start()
        try:
            yield Pair(a, b, first, clock)
        finally:
            await a.stop()
            await b.stop()


async def until(check: Callable[[], bool]) -> None:
    """Wait for the watch to carry a change across (up to 5 s)."""
    for _ in range(250):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the other auth server never saw the change")


async def test_a_node_online_at_one_server_is_listed_by_the_other(pair: Pair) -> None:
    assert pair.a.beat("n1", "10.0.0.1:3022")
    await pair.a.reconcile()
    await until(lambda: pair.b.get("n1") is not None)
    seen = pair.b.get("n1")
    assert seen is not None and seen.addr == "10.0.0.1:3022"
    assert set(pair.b.online()) == {"n1"}


async def test_where_auth_saw_a_node_is_shared_and_a_change_of_it_announced(pair: Pair) -> None:
    pair.a.beat("n1", "10.0.0.1:3022", "192.0.2.7")
    await pair.a.reconcile()
    await until(lambda: (p := pair.b.get("n1")) is not None and p.seen_from == "192.0.2.7")
    first = await pair.backend.get(PRESENCE_PREFIX + "n1")
    assert pair.a.beat("n1", "10.0.0.1:3022", "192.0.2.8")  # same claim, seen elsewhere
    await pair.a.reconcile()
    assert (await pair.backend.get(PRESENCE_PREFIX + "n1")).revision > first.revision
    await until(lambda: (p := pair.b.get("n1")) is not None and p.seen_from == "192.0.2.8")


async def test_heartbeats_do_not_write_only_changes_do(pair: Pair) -> None:
    pair.a.beat("n1", "10.0.0.1:3022")
    await pair.a.reconcile()
    first = await pair.backend.get(PRESENCE_PREFIX + "n1")
    for _ in range(200):
        pair.clock.advance(0.1)
        assert not pair.a.beat("n1", "10.0.0.1:3022")
        await pair.a.reconcile()
    assert (await pair.backend.get(PRESENCE_PREFIX + "n1")).revision == first.revision
    pair.a.beat("n1", "10.0.0.9:3022")  # moved: written once more
    await pair.a.reconcile()
    moved = await pair.backend.get(PRESENCE_PREFIX + "n1")
    assert moved.revision > first.revision
    await until(lambda: (p := pair.b.get("n1")) is not None and p.addr == "10.0.0.9:3022")


async def test_a_node_offline_at_its_server_drops_out_everywhere(pair: Pair) -> None:
    pair.a.beat("n1", "10.0.0.1:3022")
    await pair.a.reconcile()
    await until(lambda: pair.b.get("n1") is not None)
    pair.clock.advance(pair.a.ttl + 1)
    await pair.a.reconcile()
    await until(lambda: pair.b.get("n1") is None)
    assert await pair.backend.get_range(PRESENCE_PREFIX, PRESENCE_PREFIX + "\U0010ffff") == []


async def test_a_dead_servers_nodes_drop_out_with_its_lease(pair: Pair) -> None:
    pair.a.beat("n1", "10.0.0.1:3022")
    await pair.a.reconcile()
    await until(lambda: pair.b.get("n1") is not None)
    for task in pair.a._tasks:  # A stops renewing, as if its process died
        task.cancel()
    pair.clock.advance(LEASE + 1)
    assert pair.b.get("n1") is None  # its presence item is still there, its lease is not
    assert await pair.backend.get(PRESENCE_PREFIX + "n1")


async def test_a_node_that_moved_is_not_withdrawn_by_its_old_server(pair: Pair) -> None:
    pair.a.beat("n1", "10.0.0.1:3022")
    await pair.a.reconcile()
    pair.b.beat("n1", "10.0.0.1:3022")  # it reconnected to B
    await pair.b.reconcile()
    pair.clock.advance(pair.a.ttl / 2)
    pair.b.beat("n1", "10.0.0.1:3022")
    pair.clock.advance(pair.a.ttl / 2 + 1)  # A's entry expires, B's does not
    await pair.b.renew_lease()  # (the fake clock outran B's renewal timer)
    await pair.a.reconcile()
    owner = await pair.backend.get(PRESENCE_PREFIX + "n1")
    assert pair.b.server_id.encode() in owner.value
    await until(lambda: pair.a.get("n1") is not None)
