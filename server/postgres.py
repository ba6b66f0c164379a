"""Connecting to PostgreSQL, shared by the storage backend and the audit log.

Errors say what the server said (a refused login names the user) and never the DSN,
which may hold a password.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from proto.errors import BadParameter, ConnectionProblem

CONNECT_TIMEOUT = 10.0
DSN_HINT = "check backend.dsn: host, port, user, password and database"


def driver() -> tuple[Any, Any]:
    """``(psycopg, psycopg_pool)``, imported on first use (CLI start-up stays fast)."""
    try:
        import psycopg
        import psycopg_pool
    except ImportError as exc:
        raise BadParameter(
            "the postgres backend needs psycopg", hint="pip install 'mezite[postgres]'"
        ) from exc
    return psycopg, psycopg_pool


def reason(text: str) -> str:
    """A driver message, first line only (they can run to several), or nothing."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return f": {line[:300]}" if line else ""


async def open_pool(dsn: str, *, name: str, max_size: int) -> Any:
    """An open pool of autocommit connections, after one plain connection has shown the
    server accepts us: the pool would retry a refused login until its timeout and then
    report only that it timed out."""
    psycopg, psycopg_pool = driver()
    try:
        probe = await psycopg.AsyncConnection.connect(dsn, connect_timeout=int(CONNECT_TIMEOUT))
    except psycopg.Error as exc:
        raise ConnectionProblem(
            "cannot connect to the PostgreSQL backend" + reason(str(exc)), hint=DSN_HINT
        ) from exc
    await probe.close()
    pool = psycopg_pool.AsyncConnectionPool(
        dsn,
        min_size=1,
        max_size=max_size,
        kwargs={"autocommit": True, "application_name": name},
        open=False,
        name=name,
    )
    try:
        await pool.open(wait=True, timeout=CONNECT_TIMEOUT)
    except psycopg_pool.PoolTimeout as exc:
        await pool.close()
        raise ConnectionProblem("cannot connect to the PostgreSQL backend", hint=DSN_HINT) from exc
    return pool


@contextlib.asynccontextmanager
async def connection(pool: Any) -> AsyncIterator[Any]:
    """A connection from ``pool``; a lost server is ``ConnectionProblem``."""
    psycopg, psycopg_pool = driver()
    try:
        async with pool.connection(timeout=CONNECT_TIMEOUT) as conn:
            yield conn
    except (psycopg.OperationalError, psycopg.InterfaceError, psycopg_pool.PoolTimeout) as exc:
        raise ConnectionProblem("the PostgreSQL backend is unavailable" + reason(str(exc))) from exc
