"""The audit log in PostgreSQL, beside the backend's tables: with several auth servers
on one store, every server's events land in one log and a search on any server sees
them all.

A trigger refuses UPDATE, DELETE and TRUNCATE on the events table: like SQLite's, it
stops mistakes and casual tampering through SQL, not a database superuser.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

from server.postgres import connection, open_pool

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


def _json_text(key: str) -> str:
    return f"(fields::jsonb ->> '{key}')"


_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS mezite_audit_events ("
    ' seq BIGSERIAL PRIMARY KEY, id TEXT COLLATE "C" UNIQUE NOT NULL,'
    " time DOUBLE PRECISION NOT NULL, type TEXT NOT NULL, code TEXT NOT NULL,"
    ' user_name TEXT COLLATE "C" NOT NULL, session_id TEXT NOT NULL,'
    " success BOOLEAN NOT NULL, fields TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS mezite_audit_time_id ON mezite_audit_events (time, id)",
    "CREATE INDEX IF NOT EXISTS mezite_audit_type_time ON mezite_audit_events (type, time)",
    "CREATE INDEX IF NOT EXISTS mezite_audit_user_time ON mezite_audit_events (user_name, time)",
    "CREATE OR REPLACE FUNCTION mezite_audit_append_only() RETURNS trigger"
    " LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'audit events are append-only'; END $$",
    "CREATE OR REPLACE TRIGGER mezite_audit_no_change BEFORE UPDATE OR DELETE"
    " ON mezite_audit_events FOR EACH ROW EXECUTE FUNCTION mezite_audit_append_only()",
    "CREATE OR REPLACE TRIGGER mezite_audit_no_truncate BEFORE TRUNCATE"
    " ON mezite_audit_events FOR EACH STATEMENT EXECUTE FUNCTION mezite_audit_append_only()",
)
_MIGRATE_LOCK = 0x6D657A6974650003

# ON CONFLICT DO NOTHING: a batch whose commit went through but whose caller never heard
# is written again; its events are skipped by id rather than failing.
_INSERT = (
    "INSERT INTO mezite_audit_events"
    " (id, time, type, code, user_name, session_id, success, fields)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING"
)
_SELECT = (
    "SELECT id, time, type, code, user_name, session_id, success, fields FROM mezite_audit_events"
)


class PostgresAuditLog(AuditLog):
    def __init__(
        self,
        dsn: str,
        *,
        max_queue: int = DEFAULT_MAX_QUEUE,
        batch_size: int = DEFAULT_BATCH_SIZE,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
    ) -> None:
        super().__init__(max_queue=max_queue, batch_size=batch_size, flush_interval=flush_interval)
        self._dsn = dsn
        self._pool: Any = None

    def __repr__(self) -> str:  # the DSN may hold a password
        return "PostgresAuditLog()"

    async def _open(self) -> None:
        if self._pool is not None:
            return
        self._pool = await open_pool(self._dsn, name="mezite-audit", max_size=4)
        async with self._connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATE_LOCK,))
            for statement in _SCHEMA:
                await conn.execute(statement)

    async def _write(self, events: Sequence[AuditEvent]) -> None:
        await self._open()
        async with self._connection() as conn, conn.transaction(), conn.cursor() as cur:
            await cur.executemany(_INSERT, [event_row(event) for event in events])

    async def _query(self, query: Query) -> list[AuditEvent]:
        await self._open()
        sql, params = search_sql(
            query, _SELECT, mark="%s", json_text=_json_text, user_column="user_name"
        )
        async with self._connection() as conn:
            rows = await (await conn.execute(sql.encode(), params)).fetchall()
        return [row_event(row) for row in rows]

    async def _close_storage(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[Any]:
        async with connection(self._pool) as conn:
            yield conn
