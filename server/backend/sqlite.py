"""SQLite storage for a single auth server: one file in WAL mode.

Every statement runs on one dedicated worker thread with one connection, so operations
from this process are serialised; read-modify-write operations also hold SQLite's write
lock (``BEGIN IMMEDIATE``), so a second process on the same file cannot interleave.

Watch events come only from writes made through this instance; another process's
writes to the same file are not seen by this instance's watchers.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Self, TypeVar

from proto.clock import Clock
from proto.errors import (
    AlreadyExists,
    BadParameter,
    CompareFailed,
    NotFound,
)
from server.sqlite_worker import SQLiteWorker

from .atomic import Action, Condition, Delete, Put, validate_atomic
from .base import (
    Backend,
    Event,
    EventType,
    Item,
    is_live,
    validate_item,
    validate_key,
    validate_range,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
Mutation = Callable[[sqlite3.Connection, float], tuple[T, list[Event]]]

_SWEEP_BATCH = 1000

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS kv ("
    " key TEXT PRIMARY KEY, value BLOB NOT NULL, expires REAL, revision INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS kv_expires ON kv (expires) WHERE expires IS NOT NULL",
    # A counter rather than max(revision) + 1, which would go backwards after deletes.
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO meta (name, value) VALUES ('revision', 0)",
)

_SELECT_ANY = "SELECT key, value, expires, revision FROM kv WHERE key = ?"
_SELECT_LIVE = (
    "SELECT key, value, expires, revision FROM kv"
    " WHERE key = ? AND (expires IS NULL OR expires > ?)"
)
_SELECT_RANGE = (
    "SELECT key, value, expires, revision FROM kv"
    " WHERE key >= ? AND key < ? AND (expires IS NULL OR expires > ?)"
    " ORDER BY key LIMIT ?"
)
_SELECT_EXPIRED = (
    "SELECT key, value, expires, revision FROM kv"
    " WHERE expires IS NOT NULL AND expires <= ? ORDER BY expires, key LIMIT ?"
)
_UPSERT = "INSERT OR REPLACE INTO kv (key, value, expires, revision) VALUES (?, ?, ?, ?)"
_DELETE = "DELETE FROM kv WHERE key = ?"
_BUMP_REVISION = "UPDATE meta SET value = value + ? WHERE name = 'revision'"
_READ_REVISION = "SELECT value FROM meta WHERE name = 'revision'"


class SQLiteBackend(Backend):
    def __init__(self, path: str | Path, clock: Clock | None = None) -> None:
        super().__init__(clock)
        self.path = Path(path)
        self._worker = SQLiteWorker(
            self.path, schema=_SCHEMA, synchronous="NORMAL", what="storage", thread="mezite-sqlite"
        )

    async def open(self) -> None:
        """Connect now, so a bad path or locked file surfaces at startup rather than on
        first use. Optional: every operation connects on demand."""
        await self._run(lambda db: None)

    async def __aenter__(self) -> Self:
        try:
            await self.open()
        except BaseException:
            await self.close()
            raise
        return self

    async def get(self, key: str) -> Item:
        validate_key(key)

        def read(db: sqlite3.Connection) -> Item | None:
            row = db.execute(_SELECT_LIVE, (key, self.clock.now())).fetchone()
            return None if row is None else _item(row)

        item = await self._run(read)
        if item is None:
            raise NotFound("item not found")
        return item

    async def create(self, item: Item) -> Item:
        validate_item(item)

        def op(db: sqlite3.Connection, now: float) -> tuple[Item, list[Event]]:
            current = _current(db, item.key)
            if current is not None and is_live(current, now):
                raise AlreadyExists("item already exists")
            return _store(db, item, current, now)

        return await self._mutate(op)

    async def put(self, item: Item) -> Item:
        validate_item(item)

        def op(db: sqlite3.Connection, now: float) -> tuple[Item, list[Event]]:
            return _store(db, item, _current(db, item.key), now)

        return await self._mutate(op)

    async def update(self, item: Item) -> Item:
        validate_item(item)

        def op(db: sqlite3.Connection, now: float) -> tuple[Item, list[Event]]:
            current = _current(db, item.key)
            if current is None or not is_live(current, now):
                raise NotFound("item not found")
            return _store(db, item, current, now)

        return await self._mutate(op)

    async def compare_and_swap(self, expected: Item, replace_with: Item) -> Item:
        validate_item(expected)
        validate_item(replace_with)
        if expected.key != replace_with.key:
            raise BadParameter("expected and replacement items must have the same key")

        def op(db: sqlite3.Connection, now: float) -> tuple[Item, list[Event]]:
            current = _current(db, expected.key)
            if current is None or not is_live(current, now) or current.value != expected.value:
                raise CompareFailed("item does not hold the expected value")
            return _store(db, replace_with, current, now)

        return await self._mutate(op)

    async def delete(self, key: str) -> None:
        validate_key(key)

        def op(db: sqlite3.Connection, now: float) -> tuple[None, list[Event]]:
            current = _current(db, key)
            if current is None or not is_live(current, now):
                raise NotFound("item not found")
            return None, _remove(db, [current])

        await self._mutate(op)

    async def compare_and_delete(self, expected: Item) -> None:
        validate_item(expected)

        def op(db: sqlite3.Connection, now: float) -> tuple[None, list[Event]]:
            current = _current(db, expected.key)
            if current is None or not is_live(current, now) or current.value != expected.value:
                raise CompareFailed("item does not hold the expected value")
            return None, _remove(db, [current])

        await self._mutate(op)

    async def atomic_write(
        self, conditions: Sequence[Condition], actions: Sequence[Action]
    ) -> None:
        validate_atomic(conditions, actions)

        def op(db: sqlite3.Connection, now: float) -> tuple[None, list[Event]]:
            for condition in conditions:
                if not condition.holds(_current(db, condition.key), now):
                    raise CompareFailed("a condition of the atomic write does not hold")
            events: list[Event] = []
            for action in actions:
                if isinstance(action, Put):
                    events += _store(db, action.item, _current(db, action.item.key), now)[1]
                elif isinstance(action, Delete):
                    current = _current(db, action.key)
                    events += _remove(db, [current] if current is not None else [])
                else:
                    rows = db.execute(_SELECT_RANGE, (action.start, action.end, now, -1))
                    events += _remove(db, [_item(row) for row in rows])
            return None, events

        await self._mutate(op)

    async def get_range(self, start: str, end: str, limit: int = 0) -> list[Item]:
        validate_range(start, end, limit)

        def read(db: sqlite3.Connection) -> list[Item]:
            rows = db.execute(_SELECT_RANGE, (start, end, self.clock.now(), limit or -1))
            return [_item(row) for row in rows]

        return await self._run(read)

    async def delete_range(self, start: str, end: str) -> int:
        validate_range(start, end)

        def op(db: sqlite3.Connection, now: float) -> tuple[int, list[Event]]:
            live = [_item(row) for row in db.execute(_SELECT_RANGE, (start, end, now, -1))]
            return len(live), _remove(db, live)

        return await self._mutate(op)

    async def sweep_expired(self) -> int:
        def batch(db: sqlite3.Connection, now: float) -> tuple[int, list[Event]]:
            rows = db.execute(_SELECT_EXPIRED, (now, _SWEEP_BATCH))
            expired = [_item(row) for row in rows]
            return len(expired), _remove(db, expired)

        # Batches, each its own transaction, so a large sweep does not hold the write
        # lock against everyone else.
        total = 0
        while True:
            swept = await self._mutate(batch)
            total += swept
            if swept < _SWEEP_BATCH:
                return total

    async def _close_storage(self) -> None:
        await self._worker.close()

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        self._check_open()
        return await self._worker.run(fn)

    async def _mutate(self, fn: Mutation[T]) -> T:
        loop = asyncio.get_running_loop()

        def transaction(db: sqlite3.Connection) -> T:
            db.execute("BEGIN IMMEDIATE")
            try:
                result, events = fn(db, self.clock.now())
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            if events:
                # Scheduled from the one worker thread, so watchers get commit order.
                loop.call_soon_threadsafe(self._publish, events)
            return result

        return await self._run(transaction)


def _item(row: tuple[str, bytes, float | None, int]) -> Item:
    key, value, expires, revision = row
    return Item(key=key, value=bytes(value), expires=expires, revision=revision)


def _current(db: sqlite3.Connection, key: str) -> Item | None:
    """The row at ``key``, expired or not."""
    row = db.execute(_SELECT_ANY, (key,)).fetchone()
    return None if row is None else _item(row)


def _next_revisions(db: sqlite3.Connection, count: int) -> int:
    """Reserve ``count`` revisions; returns the first. Caller holds the write lock."""
    db.execute(_BUMP_REVISION, (count,))
    (last,) = db.execute(_READ_REVISION).fetchone()
    return int(last) - count + 1


def _store(
    db: sqlite3.Connection, item: Item, current: Item | None, now: float
) -> tuple[Item, list[Event]]:
    events: list[Event] = []
    if current is not None and not is_live(current, now):
        # Overwriting an item that expired before the sweep reached it: tell watchers it
        # went away, or they would see two PUTs with no DELETE between.
        events.append(Event(EventType.DELETE, replace(current, revision=_next_revisions(db, 1))))
    stored = replace(item, revision=_next_revisions(db, 1))
    db.execute(_UPSERT, (stored.key, stored.value, stored.expires, stored.revision))
    events.append(Event(EventType.PUT, stored))
    return stored, events


def _remove(db: sqlite3.Connection, items: list[Item]) -> list[Event]:
    if not items:
        return []
    first = _next_revisions(db, len(items))
    db.executemany(_DELETE, [(item.key,) for item in items])
    return [
        Event(EventType.DELETE, replace(item, revision=first + i)) for i, item in enumerate(items)
    ]
