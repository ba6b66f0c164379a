"""The audit log in its own SQLite file (WAL mode, mode 0600), apart from cluster state.

Every statement runs on one dedicated worker thread with one connection. Each batch of
events is one ``BEGIN IMMEDIATE`` transaction, committed with ``synchronous = FULL`` so a
flushed event survives power loss, not just a crash of this process.

Triggers refuse UPDATE and DELETE on the events table. They stop mistakes and casual
tampering through SQL; they cannot stop someone who can write the file itself.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from server.sqlite_worker import SQLiteWorker

from .events import AuditEvent
from .log import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_FLUSH_INTERVAL,
    DEFAULT_MAX_QUEUE,
    AuditLog,
    Query,
    event_row,
    row_event,
    search_sql,
)

T = TypeVar("T")


def _json_text(key: str) -> str:
    return f"json_extract(fields, '$.{key}')"


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
                db.executemany(_INSERT, [event_row(event) for event in rows])
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

        await self._run(insert)

    async def _query(self, query: Query) -> list[AuditEvent]:
        sql, params = search_sql(query, _SELECT, mark="?", json_text=_json_text)

        def read(db: sqlite3.Connection) -> list[AuditEvent]:
            return [row_event(row) for row in db.execute(sql, params)]

        return await self._run(read)

    async def _close_storage(self) -> None:
        await self._worker.close()

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._worker.run(fn)
