"""The storage contract every Mezite backend implements, in the style of Teleport's
lib/backend: an ordered key-value store with expiry, conditional writes and watches.

Everything above this layer (users, tokens, certificates, locks) is built from these
few operations, so their semantics are pinned down here and checked for every
implementation by ``tests/backend_suite.py``.
"""

from __future__ import annotations

import abc
import asyncio
import enum
import logging
import math
import unicodedata
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Self

from proto.clock import Clock, SystemClock
from proto.errors import BadParameter, ConnectionProblem, LimitExceeded, MeziteError

if TYPE_CHECKING:
    from .atomic import Action, Condition

log = logging.getLogger(__name__)

MAX_KEY_BYTES = 512
MAX_VALUE_BYTES = 1024 * 1024
DEFAULT_WATCH_QUEUE = 1024
DEFAULT_SWEEP_INTERVAL = 10.0

# Compared as code points (which is also UTF-8 byte order, so SQL BINARY collation agrees),
# this sorts after every valid key: a valid key is at most 128 U+10FFFF characters long.
KEYSPACE_END = "\U0010ffff" * (MAX_KEY_BYTES // 4 + 1)


@dataclass(frozen=True, slots=True)
class Item:
    """One stored value. ``expires`` is epoch seconds (``Clock.now()`` scale); ``revision``
    is assigned by the backend on every write and is ignored on input."""

    key: str
    value: bytes
    expires: float | None = None
    revision: int = 0


class EventType(enum.Enum):
    INIT = "init"
    PUT = "put"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class Event:
    """A committed change. A DELETE carries the item as it was, with the revision of the
    deletion itself, so revisions in one event stream always increase. INIT carries an
    empty placeholder item."""

    type: EventType
    item: Item


_INIT_EVENT = Event(EventType.INIT, Item(key="", value=b""))


def validate_key(key: str) -> None:
    if not isinstance(key, str) or not key:
        raise BadParameter("key must be a non-empty string")
    try:
        encoded = key.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BadParameter("key is not valid UTF-8") from exc
    if len(encoded) > MAX_KEY_BYTES:
        raise BadParameter(f"key is longer than {MAX_KEY_BYTES} bytes")
    if any(unicodedata.category(ch) == "Cc" for ch in key):
        raise BadParameter("key contains control characters")


def validate_item(item: Item) -> None:
    validate_key(item.key)
    if not isinstance(item.value, bytes):
        raise BadParameter("value must be bytes")
    if len(item.value) > MAX_VALUE_BYTES:
        raise BadParameter(f"value is larger than {MAX_VALUE_BYTES} bytes")
    if item.expires is not None and not math.isfinite(item.expires):
        raise BadParameter("expires must be a finite number of seconds")


def validate_range(start: str, end: str, limit: int = 0) -> None:
    if not isinstance(start, str) or not isinstance(end, str):
        raise BadParameter("range bounds must be strings")
    if limit < 0:
        raise BadParameter("limit must not be negative")


def prefix_range(prefix: str) -> tuple[str, str]:
    """The half-open range ``[start, end)`` holding exactly the keys that start with
    ``prefix``: ``prefix_range("users/")`` covers ``users/alice`` but not ``usersX``."""
    stem = prefix
    while stem and stem[-1] == "\U0010ffff":
        stem = stem[:-1]
    if not stem:
        return prefix, KEYSPACE_END
    return prefix, stem[:-1] + chr(ord(stem[-1]) + 1)


def is_live(item: Item, now: float) -> bool:
    return item.expires is None or item.expires > now


class Watcher:
    """Events for keys under some prefixes, in commit order, INIT first.

    Writers never wait for a watcher: one whose queue fills up is closed and its next
    read raises ``LimitExceeded``; the caller must re-read state and watch again.
    """

    def __init__(self, prefixes: Sequence[str], queue_size: int, backend: Backend) -> None:
        self._prefixes = tuple(prefixes)
        self._queue_size = queue_size
        self._backend = backend
        self._buffer: deque[Event] = deque()
        self._wakeup = asyncio.Event()
        self._error: MeziteError | None = None
        self._closed = False
        # The newest revision the backend has fanned out to this watcher (matching it or
        # not), and the newest of this instance's own commits that matches it: once the
        # first reaches the second, every write made here has reached the watcher.
        self.seen_revision = 0
        self.awaited_revision = 0

    @property
    def closed(self) -> bool:
        return self._closed

    def matches(self, key: str) -> bool:
        return not self._prefixes or key.startswith(self._prefixes)

    def deliver(self, event: Event) -> None:
        """Called on the event loop by the backend; never blocks."""
        if self._closed:
            return
        if len(self._buffer) >= self._queue_size:
            self.fail(LimitExceeded(f"watcher fell more than {self._queue_size} events behind"))
            return
        self._buffer.append(event)
        self._wakeup.set()

    def progress(self, revision: int) -> None:
        """Called on the event loop by the backend after each fan-out."""
        self.seen_revision = max(self.seen_revision, revision)

    @property
    def current(self) -> bool:
        """Whether every write this instance committed under the prefixes was delivered."""
        return self.seen_revision >= self.awaited_revision

    def take_ready(self) -> Sequence[Event]:
        """The events already delivered, without waiting (for a reader that must be
        current now rather than at the consumer's next turn)."""
        if not self._buffer:
            return ()
        ready = tuple(self._buffer)
        self._buffer.clear()
        return ready

    def fail(self, error: MeziteError | None) -> None:
        """Stop the watch; ``error`` (if any) is raised to the reader once the events
        already queued are consumed, or at once if the queue overflowed."""
        if self._closed:
            return
        if isinstance(error, LimitExceeded):
            self._buffer.clear()
        self._error = error
        self._closed = True
        self._backend._unregister(self)
        self._wakeup.set()

    async def close(self) -> None:
        self.fail(None)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Event:
        while True:
            if self._buffer:
                return self._buffer.popleft()
            if self._error is not None:
                raise type(self._error)(self._error.message)
            if self._closed:
                raise StopAsyncIteration
            self._wakeup.clear()
            await self._wakeup.wait()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class Backend(abc.ABC):
    """An ordered key-value store with expiry, conditional writes and watches.

    Expired items (``expires <= clock.now()``) are invisible to every read and count as
    absent for create/update/compare operations; ``sweep_expired`` removes them and
    emits their DELETE events.
    """

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock: Clock = clock if clock is not None else SystemClock()
        self._watchers: set[Watcher] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._closed = False
        self.committed_revision = 0  # the newest revision this instance has committed

    @abc.abstractmethod
    async def get(self, key: str) -> Item:
        """The live item at ``key``; ``NotFound`` otherwise."""

    @abc.abstractmethod
    async def create(self, item: Item) -> Item:
        """Write ``item`` only if no live item has its key; ``AlreadyExists`` otherwise."""

    @abc.abstractmethod
    async def put(self, item: Item) -> Item:
        """Write ``item`` whether or not its key exists."""

    @abc.abstractmethod
    async def update(self, item: Item) -> Item:
        """Overwrite the live item at ``item.key``; ``NotFound`` if there is none."""

    @abc.abstractmethod
    async def compare_and_swap(self, expected: Item, replace_with: Item) -> Item:
        """Atomically write ``replace_with`` only if the live value at the key equals
        ``expected.value``; ``CompareFailed`` otherwise, including when it is absent."""

    @abc.abstractmethod
    async def delete(self, key: str) -> None:
        """Remove the live item at ``key``; ``NotFound`` if there is none."""

    @abc.abstractmethod
    async def compare_and_delete(self, expected: Item) -> None:
        """Remove the item only if its live value equals ``expected.value``;
        ``CompareFailed`` otherwise. Of concurrent callers, exactly one wins."""

    @abc.abstractmethod
    async def atomic_write(
        self, conditions: Sequence[Condition], actions: Sequence[Action]
    ) -> None:
        """Apply ``actions`` in order, in one transaction, only if every condition holds;
        ``CompareFailed`` otherwise, with nothing written (see ``atomic.py``)."""

    @abc.abstractmethod
    async def get_range(self, start: str, end: str, limit: int = 0) -> list[Item]:
        """Live items with ``start <= key < end``, ascending; ``limit`` 0 means all."""

    @abc.abstractmethod
    async def delete_range(self, start: str, end: str) -> int:
        """Remove the live items with ``start <= key < end``; returns how many."""

    @abc.abstractmethod
    async def sweep_expired(self) -> int:
        """Remove expired items, emitting a DELETE event for each; returns how many."""

    @abc.abstractmethod
    async def _close_storage(self) -> None:
        """Release connections and threads; called once, by ``close``."""

    def watch(
        self, prefixes: Sequence[str] = (), *, queue_size: int = DEFAULT_WATCH_QUEUE
    ) -> Watcher:
        """Start watching keys under ``prefixes`` (empty: all keys). The watch is
        registered before this returns; its first event is INIT."""
        self._check_open()
        if queue_size < 1:
            raise BadParameter("queue_size must be positive")
        watcher = Watcher(prefixes, queue_size, self)
        watcher.seen_revision = self.committed_revision  # a read after INIT has those
        self._watchers.add(watcher)
        watcher.deliver(_INIT_EVENT)
        return watcher

    def _unregister(self, watcher: Watcher) -> None:
        self._watchers.discard(watcher)

    def _publish(self, events: Sequence[Event]) -> None:
        """Fan this instance's committed events out to watchers. Must run on the event
        loop, in commit order, before the writer learns that its write committed."""
        if not events:
            return
        self._committed(events)
        for watcher in list(self._watchers):
            for event in events:
                if watcher.matches(event.item.key):
                    watcher.deliver(event)
            watcher.progress(events[-1].item.revision)

    def _committed(self, events: Sequence[Event]) -> None:
        """Note this instance's commit of ``events``, before its writer resumes."""
        newest = events[-1].item.revision
        self.committed_revision = max(self.committed_revision, newest)
        for watcher in self._watchers:
            if any(watcher.matches(event.item.key) for event in events):
                watcher.awaited_revision = max(watcher.awaited_revision, newest)

    async def start(self, sweep_interval: float = DEFAULT_SWEEP_INTERVAL) -> None:
        """Begin sweeping expired items every ``sweep_interval`` seconds."""
        self._check_open()
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep_forever(sweep_interval))

    async def _sweep_forever(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sweep_expired()
            except MeziteError:
                # A busy or briefly unavailable store must not end the sweeping.
                log.warning("sweeping expired items failed", exc_info=True)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.wait([self._sweeper])
            self._sweeper = None
        for watcher in list(self._watchers):
            watcher.fail(ConnectionProblem("storage backend closed"))
        await self._close_storage()

    def _check_open(self) -> None:
        if self._closed:
            raise ConnectionProblem("storage backend is closed")

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
