"""server.backend.mirror on real SQLite and PostgreSQL: a mirror's reads equal the
backend's after every kind of write, are answered from memory while it is in step
(writes under other prefixes do not put it out of step), fall back to storage while it
is not (its own instance's write on PostgreSQL, a lost change feed), and follow what
another auth server writes to the same PostgreSQL."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from proto.clock import FakeClock
from proto.errors import MeziteError, NotFound
from server.backend import Backend, Condition, Delete, Item, Put, SQLiteBackend
from server.backend.mirror import Mirror
from server.backend.postgres import FEED_APPLICATION, PostgresBackend
from tests.pg import PostgresServer

PREFIXES = ("sessions/", "users/")
KEYS = [f"{p}{n}" for p in (*PREFIXES, "nodes/") for n in ("a", "b", "c")] + ["usersX"]


async def read(reads: Backend | Mirror, key: str) -> Item | None:
    try:
        return await reads.get(key)
    except NotFound:
        return None


def same(left: Item | None, right: Item | None) -> bool:
    if left is None or right is None:
        return left is right
    return (left.key, left.value, left.expires, left.revision) == (
        right.key, right.value, right.expires, right.revision,
    )  # fmt: skip


async def wait_until(check: Callable[[], Awaitable[bool]], within: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.02)


@pytest.fixture(params=["sqlite", "postgres"])
async def backend(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[Backend]:
    if request.param == "sqlite":
        made: Backend = SQLiteBackend(tmp_path / "mezite.db", clock=clock)
    else:
        postgres: PostgresServer = request.getfixturevalue("postgres")
        made = PostgresBackend(postgres.fresh_dsn(), clock)
    async with made:
        yield made


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def started(backend: Backend) -> Mirror:
    mirror = Mirror(backend, PREFIXES)
    await mirror.start()
    return mirror


async def random_write(backend: Backend, rng: random.Random, clock: FakeClock) -> None:
    key = rng.choice(KEYS)
    value = f"v{rng.randrange(1000)}".encode()
    expires = clock.now() + rng.choice((5, 50)) if rng.random() < 0.3 else None
    op = rng.randrange(5)
    try:
        if op == 0:
            await backend.put(Item(key, value, expires))
        elif op == 1:
            await backend.delete(key)
        elif op == 2:
            await backend.create(Item(key, value, expires))
        elif op == 3:
            other = rng.choice(KEYS)
            await backend.atomic_write(
                [Condition.absent(other)], [Put(Item(key, value)), Delete(other)]
            )
        else:
            clock.advance(rng.choice((1, 10)))  # some items lapse
            await backend.sweep_expired()
    except MeziteError:
        pass  # a create over an existing key, a failed condition: nothing changed


async def test_reads_equal_the_backends_after_every_write(
    backend: Backend, clock: FakeClock
) -> None:
    mirror = await started(backend)
    rng = random.Random(20261204)
    try:
        for _ in range(250 if isinstance(backend, SQLiteBackend) else 80):
            await random_write(backend, rng, clock)
            for key in KEYS:  # straight after the write: no wait for the watch
                before = mirror.memory_reads
                expected = await read(backend, key)
                assert same(await read(mirror, key), expected), key
                if isinstance(backend, SQLiteBackend) and expected and key.startswith(PREFIXES):
                    assert mirror.memory_reads == before + 1, key  # SQLite: always in step
    finally:
        await mirror.stop()
    assert mirror.memory_reads > 0  # PostgreSQL too, between its own writes' round trips


async def test_writes_under_other_prefixes_keep_reads_in_memory(backend: Backend) -> None:
    await backend.put(Item("users/alice", b"alice"))
    mirror = await started(backend)
    try:
        before = mirror.storage_reads
        for i in range(50):  # a fleet's heartbeats, say
            await backend.put(Item(f"nodes/n{i % 5}", b"beat"))
            assert (await mirror.get("users/alice")).value == b"alice"
        assert mirror.storage_reads == before
    finally:
        await mirror.stop()


async def test_a_write_is_read_back_at_once_and_then_from_memory(backend: Backend) -> None:
    mirror = await started(backend)
    try:
        for i in range(20):
            await backend.put(Item("sessions/s", f"v{i}".encode()))
            assert (await mirror.get("sessions/s")).value == f"v{i}".encode()
        await backend.delete("sessions/s")
        with pytest.raises(NotFound):
            await mirror.get("sessions/s")
        await backend.put(Item("sessions/s", b"again"))
        await wait_until(lambda: _from_memory(mirror, "sessions/s", b"again"))
    finally:
        await mirror.stop()


async def _from_memory(mirror: Mirror, key: str, value: bytes) -> bool:
    before = mirror.memory_reads
    got = await mirror.get(key)
    return got.value == value and mirror.memory_reads == before + 1


async def test_a_lapsed_item_is_not_read_before_the_sweep(
    backend: Backend, clock: FakeClock
) -> None:
    await backend.put(Item("sessions/short", b"s", expires=clock.now() + 30))
    mirror = await started(backend)
    try:
        assert (await mirror.get("sessions/short")).value == b"s"
        clock.advance(31)
        with pytest.raises(NotFound):
            await mirror.get("sessions/short")
    finally:
        await mirror.stop()


async def test_another_servers_writes_reach_memory(
    postgres: PostgresServer, clock: FakeClock
) -> None:
    dsn = postgres.fresh_dsn()
    async with PostgresBackend(dsn, clock) as here, PostgresBackend(dsn, clock) as there:
        mirror = await started(here)
        try:
            await there.put(Item("users/bob", b"v1"))
            assert (await mirror.get("users/bob")).value == b"v1"  # absent here: storage
            await wait_until(lambda: _from_memory(mirror, "users/bob", b"v1"))
            await there.put(Item("users/bob", b"v2"))
            await wait_until(lambda: _from_memory(mirror, "users/bob", b"v2"))
            await there.delete("users/bob")

            async def gone() -> bool:
                return await read(mirror, "users/bob") is None

            await wait_until(gone)
        finally:
            await mirror.stop()


async def test_a_lost_change_feed_reads_storage_until_the_mirror_reloads(
    postgres: PostgresServer, clock: FakeClock
) -> None:
    dsn = postgres.fresh_dsn()
    async with PostgresBackend(dsn, clock) as here, PostgresBackend(dsn, clock) as there:
        await here.put(Item("users/carol", b"before"))
        mirror = await started(here)
        try:
            assert await _from_memory(mirror, "users/carol", b"before")
            postgres.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = %s",
                (FEED_APPLICATION,),
            )
            await there.put(Item("users/carol", b"during"))  # the feed may miss it
            await wait_until(lambda: _read_is(mirror, "users/carol", b"during"))
            await wait_until(lambda: _from_memory(mirror, "users/carol", b"during"))
        finally:
            await mirror.stop()


async def _read_is(mirror: Mirror, key: str, value: bytes) -> bool:
    return (await mirror.get(key)).value == value
