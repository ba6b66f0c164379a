"""SQLiteBackend against the compliance suite, plus what only a file-backed store has:
file permissions, WAL, and two instances sharing one file."""

from __future__ import annotations

import asyncio
import sqlite3
import stat
from contextlib import closing
from pathlib import Path

import pytest

from proto.clock import Clock, FakeClock
from proto.errors import CompareFailed, ConnectionProblem, LimitExceeded, NotFound
from server.backend import Item, SQLiteBackend
from tests.backend_suite import RACERS, BackendComplianceSuite, split_outcomes


class TestSQLiteBackend(BackendComplianceSuite):
    @pytest.fixture(autouse=True)
    def _db_path(self, tmp_path: Path) -> None:
        self.db_path = tmp_path / "state" / "mezite.db"

    async def make_backend(self, clock: Clock) -> SQLiteBackend:
        return await SQLiteBackend(self.db_path, clock=clock).__aenter__()

    async def reopen_backend(self, clock: Clock) -> SQLiteBackend:
        return await self.make_backend(clock)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_file_is_private_and_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "new-dir" / "mezite.db"
    async with SQLiteBackend(path) as backend:
        await backend.put(Item("k", b"v"))
        assert mode(path) == 0o600
        assert mode(path.parent) == 0o700
        wal = path.with_name(path.name + "-wal")
        assert wal.exists()
        assert mode(wal) == 0o600
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_two_instances_on_one_file_race_cas(tmp_path: Path) -> None:
    path = tmp_path / "mezite.db"
    clock = FakeClock()
    async with SQLiteBackend(path, clock) as first, SQLiteBackend(path, clock) as second:
        await first.put(Item("counter", b"start"))
        racers = [
            (first if i % 2 else second).compare_and_swap(
                Item("counter", b"start"), Item("counter", f"racer-{i}".encode())
            )
            for i in range(RACERS)
        ]
        wins, losses = split_outcomes(await asyncio.gather(*racers, return_exceptions=True))
        assert len(wins) == 1
        assert len(losses) == RACERS - 1
        assert all(isinstance(exc, CompareFailed) for exc in losses)
        assert await first.get("counter") == wins[0]
        assert await second.get("counter") == wins[0]


async def test_two_instances_on_one_file_race_compare_and_delete(tmp_path: Path) -> None:
    path = tmp_path / "mezite.db"
    async with SQLiteBackend(path) as first, SQLiteBackend(path) as second:
        await first.put(Item("tokens/join", b"once"))
        racers = [
            (first if i % 2 else second).compare_and_delete(Item("tokens/join", b"once"))
            for i in range(RACERS)
        ]
        wins, losses = split_outcomes(await asyncio.gather(*racers, return_exceptions=True))
        assert len(wins) == 1
        assert all(isinstance(exc, CompareFailed) for exc in losses)


async def test_instances_share_one_revision_counter(tmp_path: Path) -> None:
    path = tmp_path / "mezite.db"
    async with SQLiteBackend(path) as first, SQLiteBackend(path) as second:
        writes = [
            backend.put(Item(f"k{i}", b"v")) for i in range(20) for backend in (first, second)
        ]
        revisions = [item.revision for item in await asyncio.gather(*writes)]
        assert len(set(revisions)) == len(revisions)


async def test_unopenable_path_is_a_connection_problem(tmp_path: Path) -> None:
    with pytest.raises(ConnectionProblem):
        async with SQLiteBackend(tmp_path):
            pass


async def test_existing_file_keeps_its_data_and_mode(tmp_path: Path) -> None:
    path = tmp_path / "mezite.db"
    async with SQLiteBackend(path) as backend:
        await backend.put(Item("k", b"v"))
    async with SQLiteBackend(path) as backend:
        assert (await backend.get("k")).value == b"v"
    assert mode(path) == 0o600


async def test_a_full_disk_is_said_as_one_and_loses_nothing_stored(tmp_path: Path) -> None:
    # SQLite's own "database or disk is full" (max_page_count stands in for the disk):
    # the caller hears that storage is full (RESOURCE_EXHAUSTED), not that auth is
    # unreachable, and what was stored before stays readable.
    async with SQLiteBackend(tmp_path / "mezite.db") as backend:
        await backend.put(Item("kept", b"v"))

        def cap(db: sqlite3.Connection) -> None:
            (pages,) = db.execute("PRAGMA page_count").fetchone()
            db.execute(f"PRAGMA max_page_count = {pages}")

        await backend._worker.run(cap)
        with pytest.raises(LimitExceeded) as full:
            await backend.put(Item("big", b"x" * 1_000_000))
        assert (
            full.value.message == "the auth service's storage is full: its disk has no space left"
        )
        assert full.value.grpc_status == "RESOURCE_EXHAUSTED"
        assert (await backend.get("kept")).value == b"v"
        with pytest.raises(NotFound):
            await backend.get("big")
