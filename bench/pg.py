"""A throwaway PostgreSQL for B9: `initdb` into a temporary directory of its own,
`pg_ctl start` on 127.0.0.1 and a free port, `pg_ctl stop -m immediate` and the
directory removed at the end.

PostgreSQL refuses to run as root, so as root the server runs as the `postgres` user
(Debian's package creates it); its directory is not under the bench's temp dir, which
is private to us (0700). Durability is switched off (fsync, synchronous_commit):
B9 kills auth servers, never the database, so what it checks is auth's own
acknowledgement, not the disk's."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.cluster import free_port

USER = "mezite"


def bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@dataclass
class Postgres:
    base: Path = Path()
    port: int = 0
    started: bool = False

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user={USER} dbname=postgres"

    def _run(self, *args: str) -> None:
        run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        done = subprocess.run(
            [*run_as, *args], capture_output=True, text=True, timeout=120, check=False,
            cwd=self.base,
        )  # fmt: skip
        if done.returncode != 0:
            log = self.base / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{Path(args[0]).name} failed: {done.stdout}{done.stderr}{tail}")

    def start(self) -> None:
        bins = bindir()
        if bins is None:
            raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) not found")
        self.base = Path(tempfile.mkdtemp(prefix="mezite-bench-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.base, "postgres", "postgres")
        self.port = free_port()
        data = self.base / "data"
        self._run(
            str(bins / "initdb"), "-D", str(data), "-U", USER, "--auth=trust",
            "-E", "UTF8", "--no-locale", "--no-sync",
        )  # fmt: skip
        settings = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.base} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        log = str(self.base / "server.log")
        self._run(str(bins / "pg_ctl"), "-D", str(data), "-l", log, "-o", settings, "-w", "start")
        self.started = True

    def stop(self) -> None:
        bins = bindir()
        try:
            if self.started and bins is not None:
                self.started = False
                self._run(str(bins / "pg_ctl"), "-D", str(self.base / "data"), "-m",
                          "immediate", "-w", "stop")  # fmt: skip
        finally:
            if self.base != Path():
                shutil.rmtree(self.base, ignore_errors=True)

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True, connect_timeout=5) as conn:
            return list(conn.execute(sql.encode(), params).fetchall())


def leases(pg: Postgres) -> set[str]:
    """The ids of the auth servers holding a presence lease (``auth_servers/<id>``)."""
    try:
        found = pg.rows("SELECT key FROM mezite_kv WHERE key LIKE %s", ("auth_servers/%",))
    except Exception as exc:  # before the first auth server made the tables
        if type(exc).__name__ == "UndefinedTable":
            return set()
        raise
    return {str(key).removeprefix("auth_servers/") for (key,) in found}


def presence_owners(pg: Postgres) -> dict[str, str]:
    """Node id → the auth server id its presence item names (where it heartbeats)."""
    found = pg.rows("SELECT key, value FROM mezite_kv WHERE key LIKE %s", ("presence/%",))
    return {
        str(key).removeprefix("presence/"): str(json.loads(bytes(value)).get("auth", ""))
        for key, value in found
    }
