"""The audit log in its own SQLite file (WAL mode, mode 0600), apart from cluster state.

Every statement runs on one dedicated worker thread with one connection. Each batch of
events is one ``BEGIN IMMEDIATE`` transaction, committed with ``synchronous = FULL`` so a
flushed event survives power loss, not just a crash of this process.

Triggers refuse UPDATE and DELETE on the events table. They stop mistakes and casual
tampering through SQL; they cannot stop someone who can write the file itself.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from proto.errors import Internal, MeziteError
from server.sqlite_worker import SQLiteWorker

from .events import AuditEvent
from .log import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_FLUSH_INTERVAL,
    DEFAULT_MAX_QUEUE,
    AuditLog,
    Query,
)

log = logging.getLogger(__name__)

T = TypeVar("T")


_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS events ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, time REAL NOT NULL,"
    " type TEXT NOT NULL, code TEXT NOT NULL, user TEXT NOT NULL, session_id TEXT NOT NULL,"
    " success INTEGER NOT NULL, fields TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS events_time_id ON events (time, id)",
    "CREATE INDEX IF NOT EXISTS events_type_time ON events (type, time)",
    "CREATE INDEX IF NOT EXISTS events_user_time ON events (user, time)",
    "CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events"
    " BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events"
    " BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END",
)

# OR IGNORE: a batch whose commit went through but whose caller never heard (cancelled,
# interrupted) is written again; its events are skipped by id rather than failing.
_INSERT = (
    "INSERT OR IGNORE INTO events (id, time, type, code, user, session_id, success, fields)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_SELECT = "SELECT id, time, type, code, user, session_id, success, fields FROM events"

Row = tuple[str, float, str, str, str, str, int, str]


class SQLiteAuditLog(AuditLog):
    def __init__(
        self,
        path: str | Path,
        *,
        max_queue: int = DEFAULT_MAX_QUEUE,
        batch_size: int = DEFAULT_BATCH_SIZE,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
    ) -> None:
        super().__init__(max_queue=max_queue, batch_size=batch_size, flush_interval=flush_interval)
        self.path = Path(path)
        self._worker = SQLiteWorker(
            self.path, schema=_SCHEMA, synchronous="FULL", what="audit log", thread="mezite-audit"
        )

    async def _open(self) -> None:
        await self._run(lambda db: None)

    async def _write(self, events: Sequence[AuditEvent]) -> None:
        rows = list(events)

        def insert(db: sqlite3.Connection) -> None:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(_INSERT, [_row(event) for event in rows])
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

        await self._run(insert)

    async def _query(self, query: Query) -> list[AuditEvent]:
        sql, params = _select(query)

        def read(db: sqlite3.Connection) -> list[AuditEvent]:
            return [_event(row) for row in db.execute(sql, params)]

        return await self._run(read)

    async def _close_storage(self) -> None:
        await self._worker.close()

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._worker.run(fn)


def _select(query: Query) -> tuple[str, list[object]]:
    where = ["time >= ?", "time < ?"]
    params: list[object] = [query.start, query.end]
    if query.types:
        where.append(f"type IN ({', '.join('?' * len(query.types))})")
        params.extend(query.types)
    if query.user:
        where.append("user = ?")
        params.append(query.user)
    if query.after is not None:
        after_time, after_id = query.after
        where.append("(time > ? OR (time = ? AND id > ?))")
        params.extend([after_time, after_time, after_id])
    params.append(query.limit)
    return f"{_SELECT} WHERE {' AND '.join(where)} ORDER BY time, id LIMIT ?", params


def _row(event: AuditEvent) -> Row:
    fields = json.dumps(dict(event.fields), sort_keys=True, separators=(",", ":"))
    return (
        event.id,
        event.time,
        event.type,
        event.code,
        event.user,
        event.session_id,
        int(event.success),
        fields,
    )


def _event(row: Row) -> AuditEvent:
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
