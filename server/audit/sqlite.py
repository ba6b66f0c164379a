"""The audit log in its own SQLite file (WAL mode, mode 0600), apart from cluster state.

Every statement runs on one dedicated worker thread with one connection. Each batch of
events is one ``BEGIN IMMEDIATE`` transaction, committed with ``synchronous = FULL`` so a
flushed event survives power loss, not just a crash of this process.

Triggers refuse UPDATE and DELETE on the events table. They stop mistakes and casual
tampering through SQL; they cannot stop someone who can write the file itself.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from proto.errors import ConnectionProblem, Internal, MeziteError

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

_BUSY_TIMEOUT_MS = 5000

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

# Worth a retry by the caller: another writer held the lock too long, or the file could
# not be reached. Anything else (corruption, schema trouble) is ours to investigate.
_UNAVAILABLE_CODES = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_READONLY,
    }
)


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
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mezite-audit")
        self._db: sqlite3.Connection | None = None  # only ever touched on the worker thread

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
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._disconnect)
        finally:
            self._executor.shutdown(wait=True)

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._on_worker, fn)

    def _on_worker(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        try:
            if self._db is None:
                self._db = _connect(self.path)
            return fn(self._db)
        except sqlite3.Error as exc:
            raise _translate(exc) from exc
        except OSError as exc:
            raise ConnectionProblem(f"cannot open audit log at {self.path}: {exc}") from exc

    def _disconnect(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            try:
                db.close()
            except sqlite3.Error as exc:
                raise _translate(exc) from exc


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Created here, not by SQLite, so it is never readable by others even for a moment;
    # SQLite gives the -wal and -shm files the same mode.
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        os.close(fd)
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        (mode,) = db.execute("PRAGMA journal_mode = WAL").fetchone()
        if str(mode).lower() != "wal":
            raise Internal(f"audit log could not switch to WAL mode (got {mode!r})")
        db.execute("PRAGMA synchronous = FULL")
        db.execute("BEGIN IMMEDIATE")
        for statement in _SCHEMA:
            db.execute(statement)
        db.execute("COMMIT")
    except BaseException:
        db.close()
        raise
    return db


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


def _translate(exc: sqlite3.Error) -> MeziteError:
    if exc.sqlite_errorcode & 0xFF in _UNAVAILABLE_CODES:
        return ConnectionProblem(f"audit log unavailable: {exc}")
    ref = uuid.uuid4().hex[:12]
    log.error("audit log storage error (ref %s)", ref, exc_info=exc)
    return Internal(f"internal audit log error (ref {ref})")
