"""Session recordings kept by auth: what each is (``recordings/<id>`` in the backend,
written when an upload starts and when it completes, never per chunk) and its bytes,
kept apart from the backend's change feed:

- one auth server (SQLite): files in ``<data dir>/recordings/`` (0700; 0600 each);
- several on PostgreSQL: chunks in a table of their own, so every auth server plays
  every recording.

An upload appends only at the size already stored (a resumed upload starts there), and
a recording is complete once its SHA-256 over the stored bytes matches the node's.
Session ids are UUIDs, checked before any use, so none is ever a path.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from proto.errors import AlreadyExists, BadParameter, NotFound
from server.backend import Backend, Item, prefix_range

if TYPE_CHECKING:
    from server.config import ServerConfig

META_PREFIX = "recordings/"
READ_CHUNK = 256 * 1024
_SESSION_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def validate_session_id(text: str) -> str:
    if not _SESSION_ID.fullmatch(text):
        raise BadParameter(f"invalid session id {text[:64]!r}: a UUID")
    return text


@dataclass(frozen=True)
class RecordingMeta:
    session_id: str
    node_id: str
    node_name: str
    user: str
    login: str
    started: float
    ended: float = 0.0
    truncated: bool = False
    size: int = 0
    sha256: str = ""
    complete: bool = False


class RecordingData(Protocol):
    async def size(self, session_id: str) -> int: ...

    async def append(self, session_id: str, offset: int, data: bytes) -> int:
        """Append ``data`` if ``offset`` is the stored size; the size after."""
        ...

    def read(self, session_id: str) -> AsyncIterator[bytes]: ...

    async def discard(self, session_id: str) -> None: ...

    async def close(self) -> None: ...


class FileRecordingData:
    """Recordings as files of one auth server's data dir."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory
        self._lock = asyncio.Lock()  # appends are serialised (uploads are rare and short)

    def _path(self, session_id: str) -> Path:
        return self._dir / f"{validate_session_id(session_id)}.cast"

    async def size(self, session_id: str) -> int:
        try:
            return self._path(session_id).stat().st_size
        except FileNotFoundError:
            return 0

    async def append(self, session_id: str, offset: int, data: bytes) -> int:
        async with self._lock:
            return await asyncio.to_thread(self._append, self._path(session_id), offset, data)

    def _append(self, path: Path, offset: int, data: bytes) -> int:
        self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            size = os.fstat(fd).st_size
            if size != offset:
                return size
            os.write(fd, data)
            os.fsync(fd)  # acknowledged only once on disk
            return size + len(data)
        finally:
            os.close(fd)

    async def read(self, session_id: str) -> AsyncIterator[bytes]:
        path = self._path(session_id)
        with path.open("rb") as handle:
            while chunk := await asyncio.to_thread(handle.read, READ_CHUNK):
                yield chunk

    async def discard(self, session_id: str) -> None:
        self._path(session_id).unlink(missing_ok=True)

    async def close(self) -> None:
        return None


_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS mezite_recording_chunks ("
    ' session_id TEXT COLLATE "C" NOT NULL, seq INTEGER NOT NULL, data BYTEA NOT NULL,'
    " PRIMARY KEY (session_id, seq))",
)
_MIGRATE_LOCK = 0x6D657A6974650004


class PostgresRecordingData:
    """Recordings as chunks in PostgreSQL, beside the backend's tables."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._pool: Any = None

    def __repr__(self) -> str:  # the DSN may hold a password
        return "PostgresRecordingData()"

    async def _open(self) -> Any:
        if self._pool is None:
            from server.postgres import open_pool

            pool = await open_pool(self._dsn, name="mezite-recordings", max_size=4)
            async with pool.connection() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATE_LOCK,))
                for statement in _SCHEMA:
                    await conn.execute(statement)
            self._pool = pool
        return self._pool

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[Any]:
        from server.postgres import connection

        async with connection(await self._open()) as conn:
            yield conn

    async def size(self, session_id: str) -> int:
        sql = (
            "SELECT COALESCE(SUM(length(data)), 0) FROM mezite_recording_chunks"
            " WHERE session_id = %s"
        )
        async with self._connection() as conn:
            cursor = await conn.execute(sql, (validate_session_id(session_id),))
            row = await cursor.fetchone()
        return int(row[0])

    async def append(self, session_id: str, offset: int, data: bytes) -> int:
        validate_session_id(session_id)
        async with self._connection() as conn, conn.transaction():
            # One appender per recording at a time, across every auth server.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (session_id,))
            row = await (await conn.execute(
                "SELECT COALESCE(SUM(length(data)), 0), COUNT(*) FROM mezite_recording_chunks"
                " WHERE session_id = %s", (session_id,))).fetchone()  # fmt: skip
            size, count = int(row[0]), int(row[1])
            if size != offset:
                return size
            await conn.execute(
                "INSERT INTO mezite_recording_chunks (session_id, seq, data) VALUES (%s, %s, %s)",
                (session_id, count, data),
            )
            return size + len(data)

    async def read(self, session_id: str) -> AsyncIterator[bytes]:
        validate_session_id(session_id)
        seq = 0
        while True:
            async with self._connection() as conn:
                row = await (await conn.execute(
                    "SELECT data FROM mezite_recording_chunks WHERE session_id = %s AND seq = %s",
                    (session_id, seq))).fetchone()  # fmt: skip
            if row is None:
                return
            yield bytes(row[0])
            seq += 1

    async def discard(self, session_id: str) -> None:
        async with self._connection() as conn:
            await conn.execute("DELETE FROM mezite_recording_chunks WHERE session_id = %s",
                               (validate_session_id(session_id),))  # fmt: skip

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


def recording_data(config: ServerConfig) -> RecordingData:
    """Where recordings' bytes go: PostgreSQL with the postgres backend (every auth
    server plays every recording), else the data dir."""
    if config.backend.type == "postgres":
        assert config.backend.dsn is not None
        return PostgresRecordingData(config.backend.dsn)
    return FileRecordingData(config.data_dir / "recordings")


class Recordings:
    """What each recording is (backend) and its bytes (``RecordingData``)."""

    def __init__(self, backend: Backend, data: RecordingData) -> None:
        self._backend = backend
        self.data = data

    async def get(self, session_id: str) -> RecordingMeta | None:
        try:
            item = await self._backend.get(META_PREFIX + validate_session_id(session_id))
        except NotFound:
            return None
        return RecordingMeta(**json.loads(item.value))

    async def begin(self, meta: RecordingMeta) -> RecordingMeta:
        """Record an upload's start; the stored one if another started it first."""
        item = Item(key=META_PREFIX + meta.session_id, value=json.dumps(asdict(meta)).encode())
        try:
            await self._backend.create(item)
        except AlreadyExists:
            stored = await self.get(meta.session_id)
            assert stored is not None
            return stored
        return meta

    async def complete(self, meta: RecordingMeta, size: int, sha256: str) -> RecordingMeta:
        done = replace(meta, size=size, sha256=sha256, complete=True)
        await self._backend.put(
            Item(key=META_PREFIX + meta.session_id, value=json.dumps(asdict(done)).encode())
        )
        return done

    async def digest(self, session_id: str) -> str:
        digest = hashlib.sha256()
        async for chunk in self.data.read(session_id):
            digest.update(chunk)
        return digest.hexdigest()

    async def list(self) -> list[RecordingMeta]:
        items = await self._backend.get_range(*prefix_range(META_PREFIX))
        return [RecordingMeta(**json.loads(item.value)) for item in items]
