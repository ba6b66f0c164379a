"""SQLiteAuditLog on a real file: search, paging, batching, append-only, persistence."""

from __future__ import annotations

import asyncio
import base64
import sqlite3
import stat
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import closing
from pathlib import Path

import pytest

from proto.clock import FakeClock
from proto.errors import BadParameter, ConnectionProblem
from server.audit import (
    DEFAULT_SEARCH_LIMIT,
    MAX_SEARCH_LIMIT,
    AuditEvent,
    SQLiteAuditLog,
    new_event,
)

T0 = 1_800_000_000.0
FAR_FUTURE = T0 + 10**9


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "audit" / "audit.db"


@pytest.fixture
async def audit(db_path: Path) -> AsyncIterator[SQLiteAuditLog]:
    async with SQLiteAuditLog(db_path) as log:
        yield log


def emit_logins(audit: SQLiteAuditLog, clock: FakeClock, count: int, step: float = 1.0) -> None:
    for i in range(count):
        audit.emit(new_event("user.login", clock=clock, user=f"user{i % 3}", method="local"))
        clock.advance(step)


async def search_all(
    audit: SQLiteAuditLog, *, types: Sequence[str] = (), user: str = ""
) -> list[AuditEvent]:
    events, token = await audit.search(
        start=0, end=FAR_FUTURE, types=types, user=user, limit=MAX_SEARCH_LIMIT
    )
    assert token == ""
    return events


def file_rows(
    path: Path, sql: str = "SELECT id FROM events ORDER BY seq"
) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(path)) as db:
        return db.execute(sql).fetchall()


async def test_emit_then_search_round_trips(audit: SQLiteAuditLog) -> None:
    clock = FakeClock(T0)
    event = new_event(
        "exec",
        clock=clock,
        user="alice",
        session_id="sess-1",
        command="uname -a",
        exit_code=0,
        duration=1.5,
        logins=["root", "alice"],
        note=None,
        interactive=False,
    )
    audit.emit(event)
    found, token = await audit.search(start=T0, end=T0 + 1)
    assert found == [event]
    assert token == ""
    assert found[0].code == "T3002I"
    assert dict(found[0].fields)["logins"] == ["root", "alice"]


async def test_time_range_is_start_inclusive_end_exclusive(audit: SQLiteAuditLog) -> None:
    clock = FakeClock(T0)
    emit_logins(audit, clock, 5)  # at T0 .. T0+4
    found, _ = await audit.search(start=T0 + 1, end=T0 + 3)
    assert [e.time for e in found] == [T0 + 1, T0 + 2]
    assert (await audit.search(start=T0 + 5, end=T0 + 6))[0] == []
    assert (await audit.search(start=T0 + 2, end=T0 + 2))[0] == []


async def test_filters_by_types_and_user(audit: SQLiteAuditLog) -> None:
    clock = FakeClock(T0)
    audit.emit(new_event("user.login", clock=clock, user="alice"))
    audit.emit(new_event("user.login.failed", clock=clock, user="mallory", reason="bad"))
    audit.emit(new_event("session.start", clock=clock, user="alice", session_id="s1"))
    audit.emit(new_event("cert.create", clock=clock, user="bob"))

    by_type = await search_all(audit, types=["user.login", "user.login.failed"])
    assert sorted(e.type for e in by_type) == ["user.login", "user.login.failed"]
    failed = next(e for e in by_type if e.type == "user.login.failed")
    assert failed.success is False and failed.code == "T1000W"

    alice = await search_all(audit, user="alice")
    assert sorted(e.type for e in alice) == ["session.start", "user.login"]

    both = await search_all(audit, user="alice", types=["session.start"])
    assert [e.session_id for e in both] == ["s1"]

    assert await search_all(audit, user="nobody") == []
    with pytest.raises(BadParameter):
        await audit.search(start=0, end=FAR_FUTURE, types=["no.such.type"])


async def test_paging_returns_every_event_exactly_once_in_order(
    audit: SQLiteAuditLog,
) -> None:
    clock = FakeClock(T0)
    # Several events share each timestamp, so order within a time is by id.
    for i in range(53):
        audit.emit(new_event("user.login", clock=clock, user=f"u{i}"))
        if i % 4 == 3:
            clock.advance(0.5)
    seen: list[AuditEvent] = []
    token = ""
    pages = 0
    while True:
        page, token = await audit.search(start=T0, end=FAR_FUTURE, limit=10, page_token=token)
        assert len(page) <= 10
        seen.extend(page)
        pages += 1
        if not token:
            break
    assert pages == 6
    assert len(seen) == 53
    assert len({e.id for e in seen}) == 53
    assert [(e.time, e.id) for e in seen] == sorted((e.time, e.id) for e in seen)


async def test_newest_first_pages_walk_back_in_time_exactly_once(audit: SQLiteAuditLog) -> None:
    clock = FakeClock(T0)
    for i in range(23):
        audit.emit(new_event("user.login", clock=clock, user=f"u{i}"))
        if i % 3 == 2:
            clock.advance(0.5)
    seen: list[AuditEvent] = []
    token = ""
    while True:
        page, token = await audit.search(
            start=T0, end=FAR_FUTURE, limit=5, page_token=token, newest_first=True
        )
        seen.extend(page)
        if not token:
            break
    assert [(e.time, e.id) for e in seen] == sorted(((e.time, e.id) for e in seen), reverse=True)
    assert len({e.id for e in seen}) == 23


async def test_node_filter_matches_the_name_or_the_id_exactly(audit: SQLiteAuditLog) -> None:
    clock = FakeClock(T0)
    audit.emit(new_event("session.start", clock=clock, user="a", node="web-1", node_id="n1"))
    audit.emit(new_event("session.start", clock=clock, user="b", node="web-10", node_id="n10"))
    audit.emit(new_event("user.login", clock=clock, user="web-1"))
    for node, users in (("web-1", ["a"]), ("n10", ["b"]), ("web", []), ("WEB-1", []), ("%", [])):
        found, _ = await audit.search(start=0, end=FAR_FUTURE, node=node)
        assert [e.user for e in found] == users, node
    with pytest.raises(BadParameter):
        await audit.search(start=0, end=FAR_FUTURE, node="x" * 129)


async def test_exact_multiple_of_limit_ends_with_an_empty_token(audit: SQLiteAuditLog) -> None:
    emit_logins(audit, FakeClock(T0), 10)
    page, token = await audit.search(start=T0, end=FAR_FUTURE, limit=5)
    assert len(page) == 5 and token
    page, token = await audit.search(start=T0, end=FAR_FUTURE, limit=5, page_token=token)
    assert len(page) == 5 and token == ""


@pytest.mark.parametrize(
    "token",
    [
        "not base64!",
        base64.urlsafe_b64encode(b"not json").decode(),
        base64.urlsafe_b64encode(b"[1, 2]").decode(),
        base64.urlsafe_b64encode(b'{"time": 1.0}').decode(),
        base64.urlsafe_b64encode(b'{"time": "x", "id": "' + b"a" * 32 + b'"}').decode(),
        base64.urlsafe_b64encode(b'{"time": 1.0, "id": "short"}').decode(),
        "A" * 10_000,
    ],
)
async def test_malformed_page_token_is_bad_parameter(audit: SQLiteAuditLog, token: str) -> None:
    with pytest.raises(BadParameter):
        await audit.search(start=0, end=FAR_FUTURE, page_token=token)


async def test_limit_bounds(audit: SQLiteAuditLog) -> None:
    emit_logins(audit, FakeClock(T0), 1100, step=0.001)
    page, token = await audit.search(start=0, end=FAR_FUTURE, limit=0)
    assert len(page) == DEFAULT_SEARCH_LIMIT and token
    page, token = await audit.search(start=0, end=FAR_FUTURE, limit=5000)
    assert len(page) == MAX_SEARCH_LIMIT and token
    page, token = await audit.search(start=0, end=FAR_FUTURE, limit=1)
    assert len(page) == 1 and token
    with pytest.raises(BadParameter):
        await audit.search(start=0, end=FAR_FUTURE, limit=-1)


async def test_bad_time_range_is_bad_parameter(audit: SQLiteAuditLog) -> None:
    with pytest.raises(BadParameter):
        await audit.search(start=T0 + 1, end=T0)
    with pytest.raises(BadParameter):
        await audit.search(start=float("nan"), end=T0)


async def test_many_events_are_written_in_few_batches(audit: SQLiteAuditLog) -> None:
    before = audit.batches_written
    emit_logins(audit, FakeClock(T0), 2000, step=0.01)
    await audit.flush()
    assert audit.pending == 0
    assert len(file_rows(audit.path)) == 2000
    batches = audit.batches_written - before
    assert 4 <= batches <= 20  # 500 per transaction at most, far fewer than 2,000


async def test_background_flusher_writes_without_an_explicit_flush(
    audit: SQLiteAuditLog,
) -> None:
    event = new_event("join", clock=FakeClock(T0), user="node-1", method="token")
    audit.emit(event)
    deadline = time.monotonic() + 5
    while file_rows(audit.path) != [(event.id,)]:
        assert time.monotonic() < deadline, "flusher did not write the event"
        await asyncio.sleep(0.01)


async def test_full_queue_drops_and_counts_without_raising(db_path: Path) -> None:
    clock = FakeClock(T0)
    log = SQLiteAuditLog(db_path, max_queue=10)  # not started: nothing drains the queue
    try:
        for _ in range(15):
            log.emit(new_event("user.login", clock=clock, user="alice"))
        assert log.dropped == 5
        assert log.pending == 10
        assert len(await search_all(log)) == 10
    finally:
        await log.close()


async def test_events_emitted_before_start_are_written_at_close(db_path: Path) -> None:
    log = SQLiteAuditLog(db_path)
    event = new_event("token.create", clock=FakeClock(T0), user="admin", token_name="ci")
    log.emit(event)
    await log.close()
    assert file_rows(db_path) == [(event.id,)]


async def test_closed_log_drops_emits_and_refuses_searches(db_path: Path) -> None:
    log = SQLiteAuditLog(db_path)
    await log.start()
    await log.close()
    await log.close()  # idempotent
    log.emit(new_event("user.login", clock=FakeClock(T0)))
    assert log.dropped == 1
    with pytest.raises(ConnectionProblem):
        await log.search(start=0, end=FAR_FUTURE)
    with pytest.raises(ConnectionProblem):
        await log.flush()


async def test_events_are_append_only(audit: SQLiteAuditLog) -> None:
    emit_logins(audit, FakeClock(T0), 3)
    await audit.flush()
    before = file_rows(audit.path, "SELECT * FROM events ORDER BY seq")
    with closing(sqlite3.connect(audit.path)) as db:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute("UPDATE events SET user = 'someone-else'")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute("DELETE FROM events")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute("DELETE FROM events WHERE seq = 1")
        db.commit()
    assert file_rows(audit.path, "SELECT * FROM events ORDER BY seq") == before


async def test_writing_the_same_event_twice_stores_it_once(audit: SQLiteAuditLog) -> None:
    event = new_event("role.created", clock=FakeClock(T0), user="admin", role="dev")
    audit.emit(event)
    await audit.flush()
    audit.emit(event)
    await audit.flush()
    assert await search_all(audit) == [event]


async def test_events_persist_across_close_and_reopen(db_path: Path) -> None:
    clock = FakeClock(T0)
    async with SQLiteAuditLog(db_path) as first:
        emit_logins(first, clock, 7)
    async with SQLiteAuditLog(db_path) as second:
        emit_logins(second, clock, 3)
        found = await search_all(second)
    assert len(found) == 10
    assert [e.time for e in found] == [T0 + i for i in range(10)]


async def test_file_is_private_and_in_wal_mode(audit: SQLiteAuditLog) -> None:
    audit.emit(new_event("user.login", clock=FakeClock(T0)))
    await audit.flush()
    assert stat.S_IMODE(audit.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(audit.path.parent.stat().st_mode) == 0o700
    wal = audit.path.with_name(audit.path.name + "-wal")
    assert wal.exists()
    assert stat.S_IMODE(wal.stat().st_mode) == 0o600
    assert file_rows(audit.path, "PRAGMA journal_mode") == [("wal",)]


async def test_unopenable_path_is_connection_problem(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    log = SQLiteAuditLog(blocker / "audit.db")
    with pytest.raises(ConnectionProblem):
        await log.start()
    await log.close()
