"""A fleet of simulated node agents for B4/B5.

``seed`` writes N node records straight into the SQLite backend of a data dir (before
auth starts) and issues each a TLS client certificate from the cluster's host X.509 CA,
loaded from the same backend: what `mezd join` would have produced, without N joins.

``gen`` is a load generator process: it holds, per agent and as mezd does, one Heartbeat
stream and one WatchLocks stream, on the agent's own TLS connection with its certificate
(the guard accepts x-agent-id only for the certificate on the same connection), and beats
every ``interval`` seconds with jitter. Ack latency is measured from each beat's
*scheduled* time. It is driven over stdin/stdout with one JSON command/reply per line."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
import uuid
from pathlib import Path
from typing import Any

CLUSTER = "bench-fleet"


async def seed(data_dir: Path, n: int, out: Path, dsn: str = "") -> dict[str, Any]:
    """Into the SQLite file of ``data_dir``, or into the PostgreSQL at ``dsn`` that
    several auth servers share (B4')."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from proto.clock import SystemClock
    from proto.kinds import AgentKind
    from server.auth.crypto.ca import load_or_create_authorities
    from server.auth.crypto.x509 import issue_client_cert
    from server.auth.stores.agents import AgentRecord, AgentStore
    from server.backend import Backend, SQLiteBackend

    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # noqa: ASYNC240 - setup
    t0 = time.perf_counter()
    store: Backend
    if dsn:
        from server.backend.postgres import PostgresBackend

        store = PostgresBackend(dsn)
    else:
        store = SQLiteBackend(data_dir / "backend.sqlite")
    async with store as backend:
        cas = await load_or_create_authorities(backend, CLUSTER, SystemClock())
        agents = AgentStore(backend)
        # One key for every agent: TLS does not care, and it saves 50k key generations.
        key = ec.generate_private_key(ec.SECP256R1())
        now = time.time()
        records = []
        with out.open("w") as fh:
            for i in range(n):
                record = AgentRecord(
                    id=str(uuid.uuid4()),
                    kind=AgentKind.NODE,
                    name=f"bench-{i:06d}",
                    created=now,
                    labels={"env": "bench", "rack": f"r{i % 20}"},
                )
                cert = issue_client_cert(
                    cas.host_x509,
                    key.public_key(),
                    agent_id=record.id,
                    kind="node",
                    cluster_name=cas.cluster_name,
                    now=now,
                    ttl=86400.0,
                )
                pem = cert.public_bytes(serialization.Encoding.PEM).decode()
                fh.write(json.dumps({"id": record.id, "name": record.name, "cert": pem}) + "\n")
                records.append(record)
        t_certs = time.perf_counter() - t0
        for chunk in range(0, n, 500):
            await asyncio.gather(*(agents.put(r) for r in records[chunk : chunk + 500]))
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (out.parent / "agent-key.pem").write_bytes(key_pem)
    return {"agents": n, "cert_seconds": t_certs, "seconds": time.perf_counter() - t0}


class Agent:
    def __init__(self, gen: Generator, doc: dict[str, str]) -> None:
        self.gen = gen
        self.id = doc["id"]
        self.name = doc["name"]
        self.cert = doc["cert"].encode()
        self.channel: Any = None
        self.call: Any = None
        self.locks: Any = None
        self.task: asyncio.Task[None] | None = None
        self.lock_task: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        import grpc

        from proto.client import MAX_MESSAGE_BYTES
        from proto.trust import AUTH_SERVER_NAME
        from proto.v1 import auth_pb2 as pb
        from proto.v1 import auth_pb2_grpc

        creds = grpc.ssl_channel_credentials(
            root_certificates=self.gen.ca, private_key=self.gen.key, certificate_chain=self.cert
        )
        options = [
            ("grpc.ssl_target_name_override", AUTH_SERVER_NAME),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.use_local_subchannel_pool", 1),
        ]
        self.channel = grpc.aio.secure_channel(self.gen.addr, creds, options=options)
        stub = auth_pb2_grpc.AuthServiceStub(self.channel)
        self.call = stub.Heartbeat(metadata=(("x-agent-id", self.id),))
        self.beat = pb.HeartbeatRequest(
            name=self.name, addr=f"127.0.0.1:{1024 + hash(self.id) % 60000}"
        )
        await self.call.write(self.beat)
        await self.call.read()
        # mezd follows the lock stream too: the set at once, then changes and keepalives.
        self.locks = stub.WatchLocks(pb.WatchLocksRequest(), metadata=(("x-agent-id", self.id),))
        await self.locks.read()
        self.lock_task = asyncio.create_task(self._drain_locks())

    async def _drain_locks(self) -> None:
        import grpc

        # read() as the first message was read: grpc.aio refuses `async for` on a call
        # once read() has been used on it (UsageError), which left the stream undrained.
        try:
            while await self.locks.read() is not grpc.aio.EOF:
                pass
        except Exception as exc:
            self.gen.error(exc)

    async def run(self, interval: float) -> None:
        loop = asyncio.get_running_loop()
        # The first beat went out on connect; spread the next ones over one interval.
        scheduled = loop.time() + random.uniform(0, interval)
        while True:
            delay = scheduled - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                await self.call.write(self.beat)
                await self.call.read()
            except Exception as exc:
                self.gen.error(exc)
                return
            self.gen.ack(scheduled, loop.time() - scheduled)
            scheduled += interval * random.uniform(0.9, 1.1)


class Generator:
    def __init__(self, opts: argparse.Namespace) -> None:
        self.addr = opts.addr
        self.ca = Path(opts.ca).read_bytes()
        self.key = Path(opts.key).read_bytes()
        self.interval = opts.interval
        docs = [json.loads(line) for line in Path(opts.certs).read_text().splitlines()]
        self.agents = [Agent(self, d) for d in docs[opts.first : opts.first + opts.count]]
        self.live = 0
        self.errors = 0
        self.first_error = ""
        self.window: tuple[float, float] | None = None
        self.samples: list[float] = []

    def error(self, exc: Exception) -> None:
        self.errors += 1
        self.first_error = self.first_error or f"{type(exc).__name__}: {exc}"[:300]

    def ack(self, scheduled: float, latency: float) -> None:
        if self.window and self.window[0] <= scheduled < self.window[1]:
            self.samples.append(latency)

    async def grow(self, n: int, parallel: int, deadline: float | None = None) -> dict[str, Any]:
        """Connect agents up to index ``n``; with a ``deadline`` (seconds), those not
        connected by then are given up and counted as failed (``late``)."""
        t0 = time.perf_counter()
        sem = asyncio.Semaphore(parallel)
        failed = 0

        async def one(agent: Agent) -> None:
            nonlocal failed
            async with sem:
                try:
                    await asyncio.wait_for(agent.connect(), 60)
                except Exception as exc:
                    failed += 1
                    self.error(exc)
                    return
            agent.task = asyncio.create_task(agent.run(self.interval))

        targets = self.agents[self.live : n]
        tasks = {asyncio.create_task(one(a)): a for a in targets}
        late: list[Agent] = []
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=deadline)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            late = [tasks[t] for t in pending]
            await asyncio.gather(
                *(a.channel.close() for a in late if a.channel is not None),
                return_exceptions=True,
            )
        self.live = max(self.live, min(n, len(self.agents)))
        failed += len(late)
        return {
            "live": self.live - failed,
            "failed": failed,
            "late": len(late),
            "seconds": time.perf_counter() - t0,
        }

    async def measure(self, seconds: float) -> dict[str, Any]:
        from bench.loadgen import LatencyStats

        loop = asyncio.get_running_loop()
        cpu0 = sum(os.times()[:2])
        self.samples = []
        start = loop.time()
        self.window = (start, start + seconds)
        await asyncio.sleep(seconds + 2.0)  # beats scheduled late in the window get acked
        self.window = None
        stats = LatencyStats.of(self.samples, self.errors, seconds).as_dict()
        stats["samples_s"] = self.samples
        stats["generator_cores"] = (sum(os.times()[:2]) - cpu0) / (seconds + 2.0)
        stats["beating"] = sum(1 for a in self.agents if a.task is not None and not a.task.done())
        return stats


async def serve_commands(opts: argparse.Namespace) -> None:
    gen = Generator(opts)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        cmd = json.loads(line)
        if cmd["op"] == "grow":
            reply = await gen.grow(cmd["n"], cmd.get("parallel", 64), cmd.get("deadline"))
        elif cmd["op"] == "measure":
            reply = await gen.measure(cmd["seconds"])
        else:
            break
        reply["first_error"] = gen.first_error
        print(json.dumps(reply), flush=True)
    os._exit(0)  # 20k channels need no orderly goodbye


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench.fleet")
    sub = parser.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("seed")
    s.add_argument("--data-dir", required=True)
    s.add_argument("--n", type=int, required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--dsn", default="", help="seed this PostgreSQL instead of the data dir")
    g = sub.add_parser("gen")
    g.add_argument("--addr", required=True)
    g.add_argument("--ca", required=True)
    g.add_argument("--key", required=True)
    g.add_argument("--certs", required=True)
    g.add_argument("--first", type=int, default=0)
    g.add_argument("--count", type=int, required=True)
    g.add_argument("--interval", type=float, default=60.0)
    opts = parser.parse_args(argv)
    if opts.mode == "seed":
        print(json.dumps(asyncio.run(seed(Path(opts.data_dir), opts.n, Path(opts.out), opts.dsn))))
    else:
        asyncio.run(serve_commands(opts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
