"""PostgresAuditLog on a real PostgreSQL server: the same answers as SQLiteAuditLog for
the same events, append-only, and one log for several auth servers."""

from __future__ import annotations

import itertools
from pathlib import Path

import psycopg
import pytest

from proto.clock import FakeClock
from proto.errors import ConnectionProblem
from server.audit import AuditEvent, SQLiteAuditLog, new_event
from server.audit.log import AuditLog
from server.audit.postgres import PostgresAuditLog
from tests.pg import PostgresServer

T0 = 1_800_000_000.0
FAR = T0 + 10**6


def events() -> list[AuditEvent]:
    """Logins, joins and certificates by three users, several at the same instant (so
    the id breaks ties), one failure."""
    clock = FakeClock(T0)
    made = []
    for i in range(40):
        kind = "user.login.failed" if i == 7 else ("user.login", "join", "cert.create")[i % 3]
        about = {"node": f"web-{i % 2}", "node_id": f"id-{i % 2}"} if i % 3 == 1 else {}
        made.append(new_event(kind, clock=clock, user=f"user{i % 4}", success=i != 7, n=i, **about))
        if i % 5 == 4:
            clock.advance(1.5)
    return made


async def every_page(log: AuditLog, **query: object) -> list[list[AuditEvent]]:
    pages, token = [], ""
    while True:
        page, token = await log.search(page_token=token, **query)  # type: ignore[arg-type]
        pages.append(page)
        if not token:
            return pages


async def test_search_answers_exactly_as_sqlite_does(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    async with (
        SQLiteAuditLog(tmp_path / "audit.sqlite") as lite,
        PostgresAuditLog(postgres.fresh_dsn()) as pg,
    ):
        made = events()
        for event in made:
            lite.emit(event)
            pg.emit(event)
        await lite.flush()
        await pg.flush()
        queries = [
            {"start": start, "end": end, "types": types, "user": user, "limit": limit}
            for start, end in ((0, FAR), (T0 + 1.5, T0 + 6))
            for types in ((), ("join",), ("join", "cert.create"))
            for user in ("", "user1")
            for limit in (3, 1000)
        ] + [
            {"start": 0, "end": FAR, "node": node, "newest_first": newest, "limit": limit}
            for node in ("", "web-1", "id-0", "nobody")
            for newest in (False, True)
            for limit in (4, 1000)
        ]
        for query in queries:
            assert await every_page(pg, **query) == await every_page(lite, **query), query
        everything = [e for page in await every_page(pg, start=0, end=FAR) for e in page]
        assert sorted(e.id for e in everything) == sorted(e.id for e in made)
        assert not next(e for e in everything if e.fields["n"] == 7).success
        about_web1 = [
            e for page in await every_page(pg, start=0, end=FAR, node="id-1") for e in page
        ]
        assert {e.fields["n"] for e in about_web1} == {n for n in range(40) if n % 6 == 1}
        newest = [
            e for p in await every_page(pg, start=0, end=FAR, newest_first=True, limit=7) for e in p
        ]
        assert newest == everything[::-1]


async def test_events_are_append_only(postgres: PostgresServer) -> None:
    dsn = postgres.fresh_dsn()
    async with PostgresAuditLog(dsn) as log:
        for event in itertools.islice(events(), 3):
            log.emit(event)
        await log.flush()
        before = await every_page(log, start=0, end=FAR)
        with psycopg.connect(dsn, autocommit=True) as conn:
            for statement in (
                "UPDATE mezite_audit_events SET user_name = 'someone-else'",
                "DELETE FROM mezite_audit_events",
                "TRUNCATE mezite_audit_events",
            ):
                with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                    conn.execute(statement.encode())
        assert await every_page(log, start=0, end=FAR) == before


async def test_one_log_for_every_auth_server_and_no_duplicates(postgres: PostgresServer) -> None:
    dsn = postgres.fresh_dsn()
    made = events()
    async with PostgresAuditLog(dsn) as first, PostgresAuditLog(dsn) as second:
        for i, event in enumerate(made):
            (first if i % 2 else second).emit(event)
        first.emit(made[0])  # a batch retried after a lost reply writes nothing twice
        await first.flush()
        await second.flush()
        seen = [e for page in await every_page(second, start=0, end=FAR, limit=7) for e in page]
    assert sorted(e.id for e in seen) == sorted(e.id for e in made)
    async with PostgresAuditLog(dsn) as reopened:
        assert len(await reopened.search(start=0, end=FAR, limit=1000)) == 2


async def test_an_unreachable_log_fails_at_start_without_the_password(
    postgres: PostgresServer,
) -> None:
    log = PostgresAuditLog(f"host=127.0.0.1 port={postgres.port} user=ghost password=hunter2")
    with pytest.raises(ConnectionProblem) as info:
        await log.start()
    await log.close()
    assert "ghost" in info.value.message and "hunter2" not in info.value.message
    assert "hunter2" not in repr(log)
