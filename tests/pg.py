"""A throwaway PostgreSQL server for tests: `initdb` into a temporary directory, started
with `pg_ctl` on 127.0.0.1 and a free port, stopped and deleted afterwards.

PostgreSQL refuses to run as root, so as root (CI) the server runs as the `postgres`
user that Debian's package creates. Each test gets its own schema (``fresh_dsn``), so
tests share one server and never each other's tables.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

USER = "mezite"


def _bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise RuntimeError(
        "PostgreSQL server binaries not found; install them (apt-get install postgresql)"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    log: Path

    def dsn(self, schema: str | None = None) -> str:
        options = f" options='-c search_path={schema}'" if schema else ""
        return f"host={self.host} port={self.port} user={USER} dbname=postgres{options}"

    def execute(self, statement: str, params: tuple[object, ...] = ()) -> None:
        import psycopg

        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(statement.encode(), params)

    def fresh_dsn(self) -> str:
        """A DSN whose tables land in a new, empty schema of their own."""
        schema = "t_" + uuid.uuid4().hex[:16]
        self.execute(f"CREATE SCHEMA {schema}")
        return self.dsn(schema)


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    bindir = _bindir()
    base = Path(tempfile.mkdtemp(prefix="mezite-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:
        run_as = ["runuser", "-u", "postgres", "--"]
        shutil.chown(base, "postgres", "postgres")
    data, log = base / "data", base / "server.log"
    port = _free_port()

    def run(*args: str) -> None:
        # cwd: our own directory, which the postgres user can enter (and which no other
        # test can delete from under us).
        done = subprocess.run(
            [*run_as, *args], capture_output=True, text=True, timeout=120, check=False, cwd=base
        )
        if done.returncode != 0:
            server_log = log.read_text() if log.exists() else ""
            raise RuntimeError(f"{args[0]} failed:\n{done.stdout}{done.stderr}{server_log}")

    try:
        run(
            str(bindir / "initdb"), "-D", str(data), "-U", USER, "--auth=trust",
            "-E", "UTF8", "--no-locale", "--no-sync",
        )  # fmt: skip
        settings = (
            f"-c listen_addresses=127.0.0.1 -p {port} -k {base} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=300"
        )
        run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", settings, "-w", "start")
        try:
            yield PostgresServer("127.0.0.1", port, log)
        finally:
            run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(base, ignore_errors=True)
