"""The audit log contract: fire-and-forget ``emit``, batched durable writes, and paged
search in (time, id) order.

Emitting never blocks and never fails for lack of room: events go on a bounded
in-memory queue that a background task drains in batches. If the store falls so far
behind that the queue fills, further events are dropped, counted in ``dropped`` and
logged, because stalling every request on the audit store would be worse.
"""

from __future__ import annotations

import abc
import asyncio
import base64
import binascii
import contextlib
import itertools
import json
import logging
import math
import re
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any, Self

from proto import limits
from proto.errors import BadParameter, ConnectionProblem, Internal, MeziteError

from .events import AuditEvent, event_code

log = logging.getLogger(__name__)

DEFAULT_MAX_QUEUE = 100_000
DEFAULT_BATCH_SIZE = 500
DEFAULT_FLUSH_INTERVAL = 0.05
DEFAULT_SEARCH_LIMIT = 100
MAX_SEARCH_LIMIT = limits.MAX_PAGE
_MAX_RETRY_DELAY = 5.0
_MAX_PAGE_TOKEN_CHARS = limits.MAX_PAGE_TOKEN_CHARS
_EVENT_ID = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True, slots=True)
class Query:
    """A validated search, as handed to a store: events with ``start <= time < end``,
    of one of ``types`` (empty: any), by ``user`` (empty: anyone) and about ``node``
    (its name or id in the fields a node's events carry; empty: any), strictly after
    ``after`` in (time, id) order (before it, when ``newest_first``), at most ``limit``
    of them."""

    start: float
    end: float
    types: tuple[str, ...]
    user: str
    after: tuple[float, str] | None
    limit: int
    node: str = ""
    newest_first: bool = False


class AuditLog(abc.ABC):
    """An append-only store of ``AuditEvent``s.

    ``emit`` must be called on the event loop's thread. Events emitted before ``start``
    wait in the queue until ``start``, ``flush``, ``search`` or ``close``.
    """

    def __init__(
        self,
        *,
        max_queue: int = DEFAULT_MAX_QUEUE,
        batch_size: int = DEFAULT_BATCH_SIZE,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
    ) -> None:
        if max_queue < 1 or batch_size < 1 or not flush_interval > 0:
            raise BadParameter("max_queue, batch_size and flush_interval must be positive")
        self.max_queue = max_queue
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.dropped = 0  # events lost because the queue was full or the log closed
        self.batches_written = 0  # transactions committed
        self._queue: deque[AuditEvent] = deque()
        self._emitted = 0  # events ever queued
        self._written = 0  # of those, how many are durably stored (always a prefix)
        self._write_lock = asyncio.Lock()
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._closed = False

    @abc.abstractmethod
    async def _open(self) -> None:
        """Connect to the store, so that a bad location surfaces at ``start``."""

    @abc.abstractmethod
    async def _write(self, events: Sequence[AuditEvent]) -> None:
        """Durably store ``events`` in one transaction; storing an id again is a no-op."""

    @abc.abstractmethod
    async def _query(self, query: Query) -> list[AuditEvent]:
        """The events ``query`` selects, in (time, id) order."""

    @abc.abstractmethod
    async def _close_storage(self) -> None:
        """Release connections and threads; called once, by ``close``."""

    @property
    def pending(self) -> int:
        """Events emitted but not yet durably written."""
        return len(self._queue)

    def emit(self, event: AuditEvent) -> None:
        """Queue ``event`` for writing; returns at once and never raises for lack of room."""
        if not isinstance(event, AuditEvent):
            raise BadParameter("emit takes an AuditEvent")
        if self._closed or len(self._queue) >= self.max_queue:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                why = "audit log is closed" if self._closed else "audit queue is full"
                log.error(
                    "%s: dropped audit event %s (%d dropped so far)", why, event.type, self.dropped
                )
            return
        self._queue.append(event)
        self._emitted += 1
        self._wakeup.set()

    async def flush(self) -> None:
        """Return once every event emitted before this call is durably written."""
        self._check_open()
        target = self._emitted
        async with self._write_lock:
            while self._written < target and self._queue:
                await self._write_batch()

    async def search(
        self,
        *,
        start: float,
        end: float,
        types: Sequence[str] = (),
        user: str = "",
        limit: int = DEFAULT_SEARCH_LIMIT,
        page_token: str = "",
        node: str = "",
        newest_first: bool = False,
    ) -> tuple[list[AuditEvent], str]:
        """Events with ``start <= time < end``, oldest first by (time, id) (or newest
        first), and the token for the next page ("" when there is none). ``limit`` 0
        means the default; more than ``MAX_SEARCH_LIMIT`` is capped. Pending events are
        flushed first."""
        query = _validate_query(start, end, types, user, limit, page_token)
        if not isinstance(node, str) or len(node) > limits.MAX_AGENT_ID_CHARS:
            raise BadParameter(
                f"node must be a name or id of at most {limits.MAX_AGENT_ID_CHARS} characters"
            )
        query = replace(query, node=node, newest_first=bool(newest_first))
        await self.flush()
        # One more than asked for tells whether there is a next page.
        found = await self._query(replace(query, limit=query.limit + 1))
        if len(found) <= query.limit:
            return found, ""
        page = found[: query.limit]
        return page, encode_page_token(page[-1])

    async def start(self) -> None:
        """Open the store and begin writing queued events in the background."""
        self._check_open()
        if self._flusher is None:
            await self._open()
            self._flusher = asyncio.create_task(self._flush_forever(), name="audit-flusher")

    async def close(self) -> None:
        """Write everything emitted so far, then stop. Later emits are dropped."""
        if self._closed:
            return
        self._closed = True
        self._stopping.set()
        self._wakeup.set()
        try:
            if self._flusher is not None:
                await asyncio.wait([self._flusher])
                self._flusher = None
            async with self._write_lock:
                while self._queue:
                    await self._write_batch()
        except BaseException:
            lost, self._queue = len(self._queue), deque()
            self.dropped += lost
            log.error("audit log closed with %d events unwritten", lost)
            raise
        finally:
            await self._close_storage()

    async def _write_batch(self) -> None:
        """Write the oldest queued events as one transaction. Caller holds the lock."""
        batch = list(itertools.islice(self._queue, self.batch_size))
        await self._write(batch)
        # Only now are they off the queue: a failed or interrupted write is retried, and
        # rewriting an event that did commit is harmless.
        for _ in batch:
            self._queue.popleft()
        self._written += len(batch)
        self.batches_written += 1

    async def _flush_forever(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if len(self._queue) < self.batch_size:
                await self._pause(self.flush_interval)  # let a batch gather
            try:
                async with self._write_lock:
                    while self._queue:
                        await self._write_batch()
            except Exception:
                # The flusher must outlive a store that is briefly unavailable.
                failures += 1
                log.exception("writing audit events failed (%d queued)", len(self._queue))
                await self._pause(min(self.flush_interval * 2**failures, _MAX_RETRY_DELAY))
            else:
                failures = 0

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    def _check_open(self) -> None:
        if self._closed:
            raise ConnectionProblem("audit log is closed")

    async def __aenter__(self) -> Self:
        try:
            await self.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def encode_page_token(last: AuditEvent) -> str:
    raw = json.dumps({"time": last.time, "id": last.id}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_page_token(token: str) -> tuple[float, str]:
    bad = BadParameter("malformed page token")
    if not isinstance(token, str) or len(token) > _MAX_PAGE_TOKEN_CHARS:
        raise bad
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise bad from exc
    if not isinstance(data, dict) or set(data) != {"time", "id"}:
        raise bad
    time, event_id = data["time"], data["id"]
    if isinstance(time, bool) or not isinstance(time, int | float) or not math.isfinite(time):
        raise bad
    if not isinstance(event_id, str) or not _EVENT_ID.fullmatch(event_id):
        raise bad
    return float(time), event_id


def _validate_query(
    start: float, end: float, types: Sequence[str], user: str, limit: int, page_token: str
) -> Query:
    for name, bound in (("start", start), ("end", end)):
        if isinstance(bound, bool) or not isinstance(bound, int | float):
            raise BadParameter(f"{name} must be a number of seconds")
        if not math.isfinite(bound):
            raise BadParameter(f"{name} must be finite")
    if end < start:
        raise BadParameter("end must not be before start")
    if isinstance(types, str):
        raise BadParameter("types must be a sequence of event types, not a string")
    for event_type in types:
        event_code(event_type)  # rejects unknown types
    if not isinstance(user, str):
        raise BadParameter("user must be a string")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise BadParameter("limit must be a non-negative integer")
    return Query(
        start=float(start),
        end=float(end),
        types=tuple(sorted(set(types))),
        user=user,
        after=decode_page_token(page_token) if page_token else None,
        limit=min(limit or DEFAULT_SEARCH_LIMIT, MAX_SEARCH_LIMIT),
    )


def event_row(event: AuditEvent) -> tuple[str, float, str, str, str, str, bool, str]:
    """An event as a store's row: id, time, type, code, user, session id, success and
    the fields as canonical JSON."""
    fields = json.dumps(dict(event.fields), sort_keys=True, separators=(",", ":"))
    return (
        event.id,
        event.time,
        event.type,
        event.code,
        event.user,
        event.session_id,
        event.success,
        fields,
    )


def row_event(row: Sequence[Any]) -> AuditEvent:
    """The event a stored row holds (``event_row``'s order)."""
    event_id, time, type_, code, user, session_id, success, fields = row
    try:
        return AuditEvent(
            id=event_id,
            type=type_,
            code=code,
            time=time,
            user=user,
            session_id=session_id,
            success=bool(success),
            fields=json.loads(fields),
        )
    except (MeziteError, ValueError) as exc:
        # Stored rows were valid when written; one that is not is our problem, not the
        # caller's bad parameter.
        ref = uuid.uuid4().hex[:12]
        log.error("unreadable audit event %s (ref %s)", event_id, ref, exc_info=exc)
        raise Internal(f"internal audit log error (ref {ref})") from exc


def search_sql(
    query: Query,
    select: str,
    *,
    mark: str,
    json_text: Callable[[str], str],
    user_column: str = "user",
) -> tuple[str, list[object]]:
    """``query`` as SQL after ``select`` (which names the columns of ``event_row``), for
    a driver whose placeholder is ``mark`` and whose ``json_text(key)`` is the SQL of
    the fields' text value at ``key``; every store answers in (time, id) order, or its
    reverse."""
    where = [f"time >= {mark}", f"time < {mark}"]
    params: list[object] = [query.start, query.end]
    if query.types:
        where.append(f"type IN ({', '.join([mark] * len(query.types))})")
        params.extend(query.types)
    if query.user:
        where.append(f"{user_column} = {mark}")
        params.append(query.user)
    if query.node:
        where.append(f"({json_text('node')} = {mark} OR {json_text('node_id')} = {mark})")
        params.extend([query.node, query.node])
    beyond, order = ("<", "time DESC, id DESC") if query.newest_first else (">", "time, id")
    if query.after is not None:
        after_time, after_id = query.after
        where.append(f"(time {beyond} {mark} OR (time = {mark} AND id {beyond} {mark}))")
        params.extend([after_time, after_time, after_id])
    params.append(query.limit)
    return f"{select} WHERE {' AND '.join(where)} ORDER BY {order} LIMIT {mark}", params
