"""B5: ListNodes at 10k and 50k online nodes: the first page and a full paginated walk
(page size as `mez ls` asks for it, i.e. the server default, and the maximum page),
as the local admin over real gRPC/TLS. Peer: a raw SQL read of the same rows from the
SQLite file.

Online nodes come from real heartbeat streams where the machine can hold them (B4);
50k connections do not fit under this sandbox's file-descriptor limit, so for 50k a
real AuthServer (same code as `mezctl start`, own process, real TLS listener) is started
on the seeded backend and its presence table is filled directly, one beat per node,
before the walk. See bench/README.md."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from bench.loadgen import percentile

FIRST_PAGE_TARGET_MS = 10.0  # issue 22
WALK_TARGET_S = 0.5  # issue 22


def raw_sql(backend_file: Path, limit: int = -1, repeat: int = 5) -> dict[str, Any]:
    """SELECT the agent rows straight from the SQLite file (and decode them)."""
    times, decode_times, rows = [], [], 0
    for _ in range(repeat):
        db = sqlite3.connect(f"file:{backend_file}?mode=ro", uri=True)
        t0 = time.perf_counter()
        values = [
            v
            for (v,) in db.execute(
                "SELECT value FROM kv WHERE key >= 'agents/' AND key < 'agents0' LIMIT ?", (limit,)
            )
        ]
        t1 = time.perf_counter()
        decoded = [json.loads(v) for v in values]
        t2 = time.perf_counter()
        db.close()
        rows = len(decoded)
        times.append(t1 - t0)
        decode_times.append(t2 - t0)
    return {
        "rows": rows,
        "select_s": percentile(times, 50),
        "select_decode_s": percentile(decode_times, 50),
    }


def walk(addr: str, admin_dir: Path, limit: int, repeat: int) -> dict[str, Any]:
    """Synchronous grpcio, like `mez ls`: first page and whole walk, ``repeat`` times."""
    from proto.client import AuthClient, ClientIdentity
    from proto.trust import certificate_agent_id
    from proto.v1 import auth_pb2 as pb

    cert = (admin_dir / "cert.pem").read_bytes()
    ident = ClientIdentity(
        agent_id=certificate_agent_id(cert),  # a new id at every start of auth
        cert_pem=cert,
        key_pem=(admin_dir / "key.pem").read_bytes(),
    )
    firsts, walks, count, pages = [], [], 0, 0
    with AuthClient(addr, (admin_dir / "ca.pem").read_bytes(), ident, timeout=120) as client:
        client.rpc.ListNodes(pb.ListNodesRequest(limit=1))  # connect, warm
        for _ in range(repeat):
            token, count, pages = "", 0, 0
            t0 = time.perf_counter()
            while True:
                reply = client.rpc.ListNodes(pb.ListNodesRequest(limit=limit, page_token=token))
                if pages == 0:
                    firsts.append(time.perf_counter() - t0)
                pages += 1
                count += len(reply.nodes)
                token = reply.next_page_token
                if not token:
                    break
            walks.append(time.perf_counter() - t0)
    return {
        "limit": limit,
        "nodes": count,
        "pages": pages,
        "first_page_s": percentile(firsts, 50),
        "walk_s": percentile(walks, 50),
        "first_page_all": firsts,
        "walk_all": walks,
    }


def measure(addr: str, admin_dir: Path, repeat: int) -> dict[str, Any]:
    from bench.results import run_worker

    args = ["walk", "--addr", addr, "--admin-dir", str(admin_dir), "--repeat", str(repeat)]
    return run_worker("b5_listnodes", args, timeout=600)


async def serve_filled(data_dir: Path, cluster: str) -> None:
    """A real AuthServer on ``data_dir`` whose presence table holds every node."""
    from server.audit import SQLiteAuditLog
    from server.auth.server import AuthServer
    from server.backend import SQLiteBackend
    from server.config import resolve_config

    config = resolve_config(
        config_file=None,
        env={},
        flags={"data_dir": data_dir, "cluster_name": cluster, "auth.listen_addr": "127.0.0.1:0"},
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with (
        SQLiteBackend(data_dir / "backend.sqlite") as backend,
        SQLiteAuditLog(data_dir / "audit.sqlite") as audit_log,
    ):
        server = AuthServer(config, backend, audit_log)
        await server.start()
        for i, record in enumerate(await server.agents.list()):
            if record.kind == "node":
                server.presence.beat(record.id, f"127.0.0.1:{1024 + i % 60000}")
        print(
            json.dumps({"addr": server.addr, "online": len(server.presence.online())}), flush=True
        )
        await stop.wait()
        await server.stop()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench.b5_listnodes")
    sub = parser.add_subparsers(dest="mode", required=True)
    w = sub.add_parser("walk")
    w.add_argument("--addr", required=True)
    w.add_argument("--admin-dir", required=True)
    w.add_argument("--repeat", type=int, default=3)
    s = sub.add_parser("serve")
    s.add_argument("--data-dir", required=True)
    s.add_argument("--cluster", required=True)
    opts = parser.parse_args(argv)
    if opts.mode == "walk":
        admin = Path(opts.admin_dir)
        out = {
            "default_page": walk(opts.addr, admin, 0, opts.repeat),
            "max_page": walk(opts.addr, admin, 1000, opts.repeat),
        }
        print(json.dumps(out))
    else:
        asyncio.run(serve_filled(Path(opts.data_dir), opts.cluster))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
