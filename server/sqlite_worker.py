"""One SQLite connection on one dedicated thread: the way both SQLite stores (the KV
backend and the audit log) talk to their files.

Every statement runs on the worker thread, so operations are serialised and a
read-modify-write inside one call is atomic for this process; ``BEGIN IMMEDIATE`` in the
callers keeps it atomic against other processes. The file is created 0600 before SQLite
opens it (SQLite gives its -wal and -shm files the same mode), in WAL mode, and sqlite3
errors leave here only as the error vocabulary."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from proto.errors import ConnectionProblem, Internal, LimitExceeded, MeziteError

log = logging.getLogger(__name__)
T = TypeVar("T")

BUSY_TIMEOUT_MS = 5000
# Worth a retry by the caller: another writer held the lock too long, or the file could
# not be reached. Anything else (corruption, schema trouble) is ours to investigate.
_UNAVAILABLE_CODES = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_READONLY,
    }
)


def translate(exc: sqlite3.Error, what: str, path: Path | None = None) -> MeziteError:
    if exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_FULL:
        # Said as what it is: the server was reached, and refused for want of space
        # (RESOURCE_EXHAUSTED), not "cannot reach the auth service".
        log.error("%s at %s is full: %s", what, path or "?", exc)
        return LimitExceeded(
            f"the auth service's {what} is full: its disk has no space left",
            hint="free space on the auth server's data disk",
        )
    if exc.sqlite_errorcode & 0xFF in _UNAVAILABLE_CODES:
        return ConnectionProblem(f"{what} unavailable: {exc}")
    ref = uuid.uuid4().hex[:12]
    log.error("%s error (ref %s)", what, ref, exc_info=exc)
    return Internal(f"internal {what} error (ref {ref})")


def _check_is_database(db: sqlite3.Connection, path: Path, what: str) -> None:
    """A file that is not SQLite (or whose header is damaged) is named, with the way
    out, rather than reported as an internal error on the first query."""
    try:
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        if exc.sqlite_errorcode & 0xFF not in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT):
            raise
        raise ConnectionProblem(
            f"the {what} file {path} is not a SQLite database or is damaged ({exc})",
            hint=f"restore it from a backup; `sqlite3 {path} 'PRAGMA integrity_check'` "
            "tells what is wrong",
        ) from None


def connect_private(
    path: Path, *, schema: Sequence[str], synchronous: str, what: str
) -> sqlite3.Connection:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Created here, not by SQLite, so it is never readable by others even for a moment.
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        os.close(fd)
    db = sqlite3.connect(path, isolation_level=None)
    try:
        _check_is_database(db, path, what)
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        (mode,) = db.execute("PRAGMA journal_mode = WAL").fetchone()
        if str(mode).lower() != "wal":
            raise Internal(f"{what} could not switch to WAL mode (got {mode!r})")
        db.execute(f"PRAGMA synchronous = {synchronous}")
        db.execute("BEGIN IMMEDIATE")
        for statement in schema:
            db.execute(statement)
        db.execute("COMMIT")
    except BaseException:
        db.close()
        raise
    return db


class SQLiteWorker:
    def __init__(
        self, path: Path, *, schema: Sequence[str], synchronous: str, what: str, thread: str
    ) -> None:
        self.path = path
        self._schema = tuple(schema)
        self._synchronous = synchronous
        self._what = what
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread)
        self._db: sqlite3.Connection | None = None  # only ever touched on the worker thread

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._on_worker, fn)

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._disconnect)
        finally:
            self._executor.shutdown(wait=True)

    def _on_worker(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        try:
            if self._db is None:
                self._db = connect_private(
                    self.path, schema=self._schema, synchronous=self._synchronous,
                    what=self._what,
                )  # fmt: skip
            return fn(self._db)
        except sqlite3.Error as exc:
            raise translate(exc, self._what, self.path) from exc
        except OSError as exc:
            raise ConnectionProblem(f"cannot open {self._what} at {self.path}: {exc}") from exc

    def _disconnect(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            try:
                db.close()
            except sqlite3.Error as exc:
                raise translate(exc, self._what) from exc
