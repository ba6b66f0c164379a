"""PostgresBackend against the compliance suite on a real PostgreSQL server, plus what
only a shared store has: several auth servers writing and watching one database."""

from __future__ import annotations

import asyncio

import pytest

from proto.clock import Clock, FakeClock
from proto.errors import CompareFailed, ConnectionProblem
from server.backend import EventType, Item
from server.backend.postgres import FEED_APPLICATION, PostgresBackend
from tests.backend_suite import (
    RACERS,
    BackendComplianceSuite,
    established,
    next_event,
    split_outcomes,
)
from tests.pg import PostgresServer


class TestPostgresBackend(BackendComplianceSuite):
    @pytest.fixture(autouse=True)
    def _dsn(self, postgres: PostgresServer) -> None:
        self.dsn = postgres.fresh_dsn()

    async def make_backend(self, clock: Clock) -> PostgresBackend:
        return await PostgresBackend(self.dsn, clock=clock).__aenter__()

    async def reopen_backend(self, clock: Clock) -> PostgresBackend:
        return await self.make_backend(clock)


async def test_two_auth_servers_race_cas_with_one_winner(postgres: PostgresServer) -> None:
    dsn, clock = postgres.fresh_dsn(), FakeClock()
    async with PostgresBackend(dsn, clock) as first, PostgresBackend(dsn, clock) as second:
        await first.put(Item("tokens/t", b"unused"))
        racers = [
            (first if i % 2 else second).compare_and_swap(
                Item("tokens/t", b"unused"), Item("tokens/t", f"racer-{i}".encode())
            )
            for i in range(RACERS)
        ]
        wins, losses = split_outcomes(await asyncio.gather(*racers, return_exceptions=True))
        assert len(wins) == 1
        assert all(isinstance(err, CompareFailed) for err in losses)
        assert (await second.get("tokens/t")).value == wins[0].value


async def test_a_watch_sees_another_servers_writes_in_order(postgres: PostgresServer) -> None:
    dsn, clock = postgres.fresh_dsn(), FakeClock()
    async with PostgresBackend(dsn, clock) as writer, PostgresBackend(dsn, clock) as reader:
        watcher = await established(reader, ["agents/"])
        put = await writer.put(Item("agents/n1", b"v1"))
        await writer.put(Item("other/x", b"ignored"))
        swapped = await writer.compare_and_swap(Item("agents/n1", b"v1"), Item("agents/n1", b"v2"))
        await writer.delete("agents/n1")
        events = [await next_event(watcher) for _ in range(3)]
        assert [(e.type, e.item.value) for e in events] == [
            (EventType.PUT, b"v1"),
            (EventType.PUT, b"v2"),
            (EventType.DELETE, b"v2"),
        ]
        assert [e.item.revision for e in events[:2]] == [put.revision, swapped.revision]
        await watcher.close()


async def test_a_lost_change_feed_ends_watches_which_can_start_again(
    postgres: PostgresServer,
) -> None:
    dsn = postgres.fresh_dsn()
    async with PostgresBackend(dsn) as backend:
        watcher = await established(backend)
        postgres.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (FEED_APPLICATION,),
        )
        with pytest.raises(ConnectionProblem):
            await next_event(watcher)
        # The feed comes back by itself; a new watch sees new writes.
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            again = await established(backend)
            marker = await backend.put(Item("after", b"v"))
            try:
                event = await next_event(again)
                break
            except ConnectionProblem:  # ended by the resync: the feed was still down
                assert asyncio.get_running_loop().time() < deadline
        assert (event.type, event.item.revision) == (EventType.PUT, marker.revision)
        await again.close()


async def test_an_unreachable_server_is_a_clear_error_without_the_password(
    postgres: PostgresServer,
) -> None:
    dsn = f"host=127.0.0.1 port={postgres.port} user=nobody-here password=hunter2 dbname=postgres"
    backend = PostgresBackend(dsn)
    with pytest.raises(ConnectionProblem) as info:
        await backend.open()
    await backend.close()
    assert "PostgreSQL" in info.value.message
    assert "nobody-here" in info.value.message  # the server's reason
    assert "hunter2" not in info.value.message + (info.value.hint or "")
    assert "hunter2" not in repr(backend)
