"""PostgreSQL storage, for several auth servers sharing one store (high availability).

Tables live in the connection's current schema (``options=-csearch_path=...`` in the DSN
picks another):

- ``mezite_kv``: the items, keyed by ``key COLLATE "C"`` so that ranges follow code
  point order, as on SQLite;
- ``mezite_kv_events``: every committed change, by revision, kept for a few minutes;
- ``mezite_kv_revision``: the revision sequence.

Every write takes one transaction-scoped advisory lock before it reads, so writes from
all auth servers are serialised: read-modify-write operations cannot interleave, and
revisions are handed out and committed in the same order. That order is what makes the
change feed simple: a watcher's backend reads ``mezite_kv_events`` past the last
revision it delivered, and no earlier revision can still commit behind it.

Watches see the writes of every auth server on the store. Each backend listens on a
NOTIFY channel that writes signal at commit, reads new events when woken (and every
second regardless), and fans them out to its watchers. If the feed connection drops,
the watchers end with ``ConnectionProblem`` (consumers re-watch and re-read), because
events may have been missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Self, TypeVar

from proto.clock import Clock
from proto.errors import AlreadyExists, BadParameter, CompareFailed, ConnectionProblem, NotFound
from server.postgres import CONNECT_TIMEOUT, connection, driver, open_pool, reason

from .atomic import Action, Condition, Delete, Put, validate_atomic
from .base import (
    DEFAULT_WATCH_QUEUE,
    Backend,
    Event,
    EventType,
    Item,
    Watcher,
    is_live,
    validate_item,
    validate_key,
    validate_range,
)

if TYPE_CHECKING:
    from psycopg_pool import AsyncConnectionPool

log = logging.getLogger(__name__)

T = TypeVar("T")
Mutation = Callable[[Any, float], Awaitable[tuple[T, list[Event]]]]

_WRITE_LOCK = 0x6D657A6974650001  # "mezite" + 1: the advisory lock every write holds
_MIGRATE_LOCK = 0x6D657A6974650002
_BATCH = 1000
POLL_INTERVAL = 1.0  # seconds between reads of the change feed without a NOTIFY
EVENT_RETENTION = 600.0  # seconds a change stays in the feed for slow readers
FEED_APPLICATION = "mezite-feed"  # how the LISTEN connection shows in pg_stat_activity

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS mezite_kv ("
    ' key TEXT COLLATE "C" PRIMARY KEY, value BYTEA NOT NULL,'
    " expires DOUBLE PRECISION, revision BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS mezite_kv_expires ON mezite_kv (expires) WHERE expires IS NOT NULL",
    "CREATE TABLE IF NOT EXISTS mezite_kv_events ("
    ' revision BIGINT PRIMARY KEY, type TEXT NOT NULL, key TEXT COLLATE "C" NOT NULL,'
    " value BYTEA NOT NULL, expires DOUBLE PRECISION, created DOUBLE PRECISION NOT NULL)",
    "CREATE SEQUENCE IF NOT EXISTS mezite_kv_revision",
)

_SELECT_ANY = "SELECT key, value, expires, revision FROM mezite_kv WHERE key = %s"
_SELECT_LIVE = (
    "SELECT key, value, expires, revision FROM mezite_kv WHERE key = %s"
    " AND (expires IS NULL OR expires > %s)"
)
_SELECT_RANGE = (
    "SELECT key, value, expires, revision FROM mezite_kv WHERE key >= %s AND key < %s"
    " AND (expires IS NULL OR expires > %s) ORDER BY key LIMIT %s"
)
_SELECT_EXPIRED = (
    "SELECT key, value, expires, revision FROM mezite_kv"
    " WHERE expires IS NOT NULL AND expires <= %s ORDER BY expires, key LIMIT %s"
)
_UPSERT = (
    "INSERT INTO mezite_kv (key, value, expires, revision) VALUES (%s, %s, %s, %s)"
    " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value,"
    " expires = EXCLUDED.expires, revision = EXCLUDED.revision"
)
_DELETE = "DELETE FROM mezite_kv WHERE key = %s"
_NEXT_REVISIONS = "SELECT nextval('mezite_kv_revision') FROM generate_series(1, %s)"
_RECORD_EVENT = (
    "INSERT INTO mezite_kv_events (revision, type, key, value, expires, created)"
    " VALUES (%s, %s, %s, %s, %s, %s)"
)
_READ_EVENTS = (
    "SELECT revision, type, key, value, expires FROM mezite_kv_events"
    " WHERE revision > %s ORDER BY revision LIMIT %s"
)
_LAST_EVENT = "SELECT coalesce(max(revision), 0) FROM mezite_kv_events"
_PRUNE_EVENTS = "DELETE FROM mezite_kv_events WHERE created < %s"


class PostgresBackend(Backend):
    def __init__(self, dsn: str, clock: Clock | None = None, *, pool_size: int = 8) -> None:
        super().__init__(clock)
        self._dsn = dsn
        self._pool_size = pool_size
        self._pool: AsyncConnectionPool[Any] | None = None
        self._channel = ""
        self._last = 0  # the last revision fanned out to watchers
        # Per watcher, the newest revision it must not see: changes that committed
        # before it began, which the feed may deliver after.
        self._floors: weakref.WeakKeyDictionary[Watcher, int] = weakref.WeakKeyDictionary()
        self._wake = asyncio.Event()
        self._feed: asyncio.Task[None] | None = None

    def __repr__(self) -> str:  # the DSN may hold a password
        return f"PostgresBackend(channel={self._channel!r})"

    async def open(self) -> None:
        """Connect, create the tables if missing, and start following the change feed.
        Errors here name the server, never the DSN's password."""
        self._check_open()
        self._pool = await open_pool(self._dsn, name="mezite-auth", max_size=self._pool_size)
        async with self._connection() as conn:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATE_LOCK,))
                for statement in _SCHEMA:
                    await conn.execute(statement)
            schema = (await (await conn.execute("SELECT current_schema()")).fetchone())[0]
            self._last = (await (await conn.execute(_LAST_EVENT)).fetchone())[0]
        # One channel per schema: stores in other schemas of the database stay apart.
        self._channel = "mezite_kv_" + hashlib.sha256(schema.encode()).hexdigest()[:16]
        ready = asyncio.Event()
        self._feed = asyncio.create_task(self._follow(ready), name="mezite-pg-feed")
        await ready.wait()

    async def __aenter__(self) -> Self:
        try:
            await self.open()
        except BaseException:
            await self.close()
            raise
        return self

    def watch(
        self, prefixes: Sequence[str] = (), *, queue_size: int = DEFAULT_WATCH_QUEUE
    ) -> Watcher:
        watcher = super().watch(prefixes, queue_size=queue_size)
        floor = self._floors[watcher] = max(self._last, self.committed_revision)
        watcher.seen_revision = floor
        return watcher

    def _publish(self, events: Sequence[Event]) -> None:
        """Fan the feed's events (every auth server's) out to watchers."""
        for watcher in list(self._watchers):
            floor = self._floors.get(watcher, 0)
            for event in events:
                if event.item.revision > floor and watcher.matches(event.item.key):
                    watcher.deliver(event)
            if events:
                watcher.progress(events[-1].item.revision)

    # --- reads

    async def get(self, key: str) -> Item:
        validate_key(key)
        async with self._connection() as conn:
            row = await (await conn.execute(_SELECT_LIVE, (key, self.clock.now()))).fetchone()
        if row is None:
            raise NotFound("item not found")
        return _item(row)

    async def get_range(self, start: str, end: str, limit: int = 0) -> list[Item]:
        validate_range(start, end, limit)
        async with self._connection() as conn:
            cur = await conn.execute(_SELECT_RANGE, (start, end, self.clock.now(), limit or None))
            return [_item(row) for row in await cur.fetchall()]

    # --- writes

    async def create(self, item: Item) -> Item:
        validate_item(item)

        async def op(conn: Any, now: float) -> tuple[Item, list[Event]]:
            current = await _current(conn, item.key)
            if current is not None and is_live(current, now):
                raise AlreadyExists("item already exists")
            return await _store(conn, item, current, now)

        return await self._mutate(op)

    async def put(self, item: Item) -> Item:
        validate_item(item)

        async def op(conn: Any, now: float) -> tuple[Item, list[Event]]:
            return await _store(conn, item, await _current(conn, item.key), now)

        return await self._mutate(op)

    async def update(self, item: Item) -> Item:
        validate_item(item)

        async def op(conn: Any, now: float) -> tuple[Item, list[Event]]:
            current = await _current(conn, item.key)
            if current is None or not is_live(current, now):
                raise NotFound("item not found")
            return await _store(conn, item, current, now)

        return await self._mutate(op)

    async def compare_and_swap(self, expected: Item, replace_with: Item) -> Item:
        validate_item(expected)
        validate_item(replace_with)
        if expected.key != replace_with.key:
            raise BadParameter("expected and replacement items must have the same key")

        async def op(conn: Any, now: float) -> tuple[Item, list[Event]]:
            current = await _current(conn, expected.key)
            if current is None or not is_live(current, now) or current.value != expected.value:
                raise CompareFailed("item does not hold the expected value")
            return await _store(conn, replace_with, current, now)

        return await self._mutate(op)

    async def delete(self, key: str) -> None:
        validate_key(key)

        async def op(conn: Any, now: float) -> tuple[None, list[Event]]:
            current = await _current(conn, key)
            if current is None or not is_live(current, now):
                raise NotFound("item not found")
            return None, await _remove(conn, [current])

        await self._mutate(op)

    async def compare_and_delete(self, expected: Item) -> None:
        validate_item(expected)

        async def op(conn: Any, now: float) -> tuple[None, list[Event]]:
            current = await _current(conn, expected.key)
            if current is None or not is_live(current, now) or current.value != expected.value:
                raise CompareFailed("item does not hold the expected value")
            return None, await _remove(conn, [current])

        await self._mutate(op)

    async def atomic_write(
        self, conditions: Sequence[Condition], actions: Sequence[Action]
    ) -> None:
        validate_atomic(conditions, actions)

        async def op(conn: Any, now: float) -> tuple[None, list[Event]]:
            for condition in conditions:
                if not condition.holds(await _current(conn, condition.key), now):
                    raise CompareFailed("a condition of the atomic write does not hold")
            events: list[Event] = []
            for action in actions:
                if isinstance(action, Put):
                    current = await _current(conn, action.item.key)
                    events += (await _store(conn, action.item, current, now))[1]
                elif isinstance(action, Delete):
                    current = await _current(conn, action.key)
                    events += await _remove(conn, [current] if current is not None else [])
                else:
                    cur = await conn.execute(_SELECT_RANGE, (action.start, action.end, now, None))
                    events += await _remove(conn, [_item(row) for row in await cur.fetchall()])
            return None, events

        await self._mutate(op)

    async def delete_range(self, start: str, end: str) -> int:
        validate_range(start, end)

        async def op(conn: Any, now: float) -> tuple[int, list[Event]]:
            cur = await conn.execute(_SELECT_RANGE, (start, end, now, None))
            live = [_item(row) for row in await cur.fetchall()]
            return len(live), await _remove(conn, live)

        return await self._mutate(op)

    async def sweep_expired(self) -> int:
        async def batch(conn: Any, now: float) -> tuple[int, list[Event]]:
            expired = [
                _item(row)
                for row in await (await conn.execute(_SELECT_EXPIRED, (now, _BATCH))).fetchall()
            ]
            return len(expired), await _remove(conn, expired)

        total = 0
        while True:  # batches, each its own transaction, so others get the lock between
            swept = await self._mutate(batch)
            total += swept
            if swept < _BATCH:
                break
        async with self._connection() as conn:
            await conn.execute(_PRUNE_EVENTS, (self.clock.now() - EVENT_RETENTION,))
        return total

    # --- plumbing

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[Any]:
        self._check_open()
        assert self._pool is not None, "open() first"
        async with connection(self._pool) as conn:
            yield conn

    async def _mutate(self, op: Mutation[T]) -> T:
        async with self._connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK,))
            now = self.clock.now()
            result, events = await op(conn, now)
            if events:
                async with conn.cursor() as cur:
                    await cur.executemany(
                        _RECORD_EVENT,
                        [
                            (
                                e.item.revision,
                                e.type.value,
                                e.item.key,
                                e.item.value,
                                e.item.expires,
                                now,
                            )
                            for e in events
                        ],
                    )
                # Delivered to listeners when (and only if) the transaction commits.
                await conn.execute("SELECT pg_notify(%s, '')", (self._channel,))
        if events:
            self._committed(events)
            self._wake.set()  # our own watchers need not wait for the round trip
        return result

    async def _follow(self, ready: asyncio.Event) -> None:
        """Keep a LISTEN connection open and fan out new events until closed."""
        psycopg, _ = driver()
        from psycopg import sql

        failures = 0
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._dsn,
                    autocommit=True,
                    connect_timeout=int(CONNECT_TIMEOUT),
                    application_name=FEED_APPLICATION,
                ) as listener:
                    await listener.execute(
                        sql.SQL("LISTEN {}").format(sql.Identifier(self._channel))
                    )
                    if failures:
                        await self._resync()
                    ready.set()
                    failures = 0
                    woken = asyncio.create_task(self._relay(listener))
                    try:
                        while True:
                            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow
                            # a cancellation that lands as the wake-up does.
                            with contextlib.suppress(TimeoutError):
                                async with asyncio.timeout(POLL_INTERVAL):
                                    await self._wake.wait()
                            self._wake.clear()
                            if woken.done():
                                woken.result()  # the listener died: raise its error
                            await self._deliver_new()
                    finally:
                        woken.cancel()
                        with contextlib.suppress(asyncio.CancelledError, Exception):
                            await woken
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the feed must outlive any one failure
                if self._closed:
                    return
                failures += 1
                ready.set()
                log.warning("PostgreSQL change feed lost (%s); watchers restart", reason(str(exc)))
                for watcher in list(self._watchers):
                    watcher.fail(ConnectionProblem("the storage change feed was interrupted"))
                await asyncio.sleep(min(30.0, 0.5 * 2**failures))

    async def _relay(self, listener: Any) -> None:
        async for _ in listener.notifies():
            self._wake.set()

    async def _resync(self) -> None:
        """After an outage: start from the newest event. Watchers were ended, and any
        watch begun during the outage is ended too, since its events may be missing."""
        async with self._connection() as conn:
            self._last = (await (await conn.execute(_LAST_EVENT)).fetchone())[0]
        for watcher in list(self._watchers):
            watcher.fail(ConnectionProblem("the storage change feed was interrupted"))

    async def _deliver_new(self) -> None:
        while True:
            async with self._connection() as conn:
                cur = await conn.execute(_READ_EVENTS, (self._last, _BATCH))
                rows = await cur.fetchall()
            if not rows:
                return
            events = [
                Event(
                    EventType(kind),
                    Item(key=key, value=bytes(value), expires=expires, revision=revision),
                )
                for revision, kind, key, value, expires in rows
            ]
            self._last = events[-1].item.revision
            if self._watchers:
                self._publish(events)
            if len(rows) < _BATCH:
                return

    async def _close_storage(self) -> None:
        if self._feed is not None:
            self._feed.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._feed
            self._feed = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


def _item(row: Sequence[Any]) -> Item:
    key, value, expires, revision = row
    return Item(key=key, value=bytes(value), expires=expires, revision=int(revision))


async def _current(conn: Any, key: str) -> Item | None:
    """The row at ``key``, expired or not."""
    row = await (await conn.execute(_SELECT_ANY, (key,))).fetchone()
    return None if row is None else _item(row)


async def _next_revisions(conn: Any, count: int) -> list[int]:
    rows = await (await conn.execute(_NEXT_REVISIONS, (count,))).fetchall()
    return sorted(int(r[0]) for r in rows)


async def _store(
    conn: Any, item: Item, current: Item | None, now: float
) -> tuple[Item, list[Event]]:
    events: list[Event] = []
    expired = current is not None and not is_live(current, now)
    revisions = await _next_revisions(conn, 2 if expired else 1)
    if expired:
        assert current is not None
        # Overwriting an item that expired before the sweep reached it: tell watchers it
        # went away, or they would see two PUTs with no DELETE between.
        events.append(Event(EventType.DELETE, replace(current, revision=revisions[0])))
    stored = replace(item, revision=revisions[-1])
    await conn.execute(_UPSERT, (stored.key, stored.value, stored.expires, stored.revision))
    events.append(Event(EventType.PUT, stored))
    return stored, events


async def _remove(conn: Any, items: list[Item]) -> list[Event]:
    if not items:
        return []
    revisions = await _next_revisions(conn, len(items))
    async with conn.cursor() as cur:
        await cur.executemany(_DELETE, [(item.key,) for item in items])
    return [
        Event(EventType.DELETE, replace(item, revision=rev))
        for item, rev in zip(items, revisions, strict=True)
    ]
