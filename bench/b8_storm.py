"""B8: the reconnect storm after a short auth restart (issue 15: every node back ≤ 10 s).

N node records and certificates are seeded as for B4 (bench/fleet.py). A worker process
(``python -m bench.b8_storm worker``) runs the product's own heartbeat loop,
``agent.presence.Heartbeat`` with its ``proto.backoff.HEARTBEAT`` policy, once per agent,
each over its own ``proto.client.AsyncAuthClient`` carrying that agent's certificate, as
mezd does. The orchestrator SIGTERMs `mezctl start`, waits for it to exit, waits 1 s and
starts it again on the same port and data dir; from the moment the port accepts
connections again, the worker notes each agent's first acknowledged beat. Times on both
sides are CLOCK_MONOTONIC, which Linux shares between processes.

The worker and the orchestrator talk in JSON lines over the worker's stdin/stdout."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from bench.b4_heartbeats import raise_nofile
from bench.cluster import FLEET_ENV, Cluster, free_port, wait_port
from bench.fleet import CLUSTER
from bench.procstat import cpu_seconds
from bench.results import Outcome, Row, Settings, run_worker

T = TypeVar("T")

TARGET_S = 10.0
TARGET = "all back ≤ 10 s"
GIVE_UP_S = 30.0  # an agent not back this long after auth listens counts as not back
RESTARTS = 3
DOWN_S = 1.0  # between auth's exit and its new start
SETTLE_S = 3.0  # every stream up longer than HEARTBEAT.healthy_after before the next kill
STORM_ENV = FLEET_ENV


class Worker:
    """The worker process, one JSON command and reply per line."""

    def __init__(self, cluster: Cluster, certs: Path, n: int) -> None:
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        argv = [
            sys.executable,
            "-m",
            "bench.b8_storm",
            "worker",
            "--addr",
            cluster.addr,
            "--ca",
            str(cluster.data_dir / "admin" / "ca.pem"),
            "--key",
            str(certs.parent / "agent-key.pem"),
            "--certs",
            str(certs),
            "--count",
            str(n),
        ]
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )

    def command(self, op: str, **args: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the storm worker {self.proc.pid} died")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def run(settings: Settings) -> Outcome:
    raise_nofile()
    n = settings.pick(1000, 200)
    root = settings.workdir / "storm"
    cluster = Cluster(root, name=CLUSTER)
    certs = root / "certs.jsonl"
    seeded = run_worker(
        "fleet",
        ["seed", "--data-dir", str(cluster.data_dir), "--n", str(n), "--out", str(certs)],
        timeout=300,
    )
    port = free_port()
    listen = f"127.0.0.1:{port}"
    cluster.start_auth(STORM_ENV, listen=listen)
    worker = Worker(cluster, certs, n)
    details: dict[str, Any] = {
        "seed": seeded,
        "agents": n,
        "auth_env": STORM_ENV,
        "restarts": [],
    }
    try:
        details["start"] = started = worker.command("start", within=120)
        if started["connected"] < n:
            raise RuntimeError(f"only {started['connected']} of {n} agents connected")
        for k in range(1, RESTARTS + 1):
            time.sleep(SETTLE_S)
            details["restarts"].append(restart(cluster, worker, listen, port, k))
        details["server_view"] = online_nodes(cluster)
    finally:
        worker.stop()
        cluster.stop()
    return Outcome(rows=rows(details), details=details)


def restart(cluster: Cluster, worker: Worker, listen: str, port: int, k: int) -> dict[str, Any]:
    """One restart: SIGTERM, exit, DOWN_S, start on the same port; then the storm."""
    assert cluster.auth is not None
    t_term = time.monotonic()
    cluster.auth.stop()
    t_exit = time.monotonic()
    down = worker.command("down")  # from here on, any ack comes from the new auth
    time.sleep(DOWN_S)
    t_spawn = time.monotonic()
    cluster.launch_auth(STORM_ENV, listen=listen, log=f"auth-{k}.log")
    assert cluster.auth is not None
    wait_port(port, cluster.auth.popen, timeout=60, poll=0.005)
    t_listen = time.monotonic()
    pid = cluster.auth.pid
    cpu_start = cpu_seconds(pid)  # the start-up itself (imports, CA load) is not the storm
    storm = worker.command("wait", since=t_listen, within=GIVE_UP_S)
    cpu_storm = cpu_seconds(pid) - cpu_start
    cluster.await_auth()
    back = sorted(t - t_listen for t in storm.pop("acked_at") if t is not None)
    n = storm["agents"]
    return {
        "restart": k,
        "stop_s": t_exit - t_term,
        "down_s": t_listen - t_term,
        "start_to_listen_s": t_listen - t_spawn,
        "startup_cpu_s": cpu_start,
        "storm_cpu_s": cpu_storm,
        "still_connected_at_exit": down["connected"],
        "back": len(back),
        "missing": n - len(back),
        "p50_s": share(back, n, 0.50),
        "p95_s": share(back, n, 0.95),
        "all_s": share(back, n, 1.0),
        "back_s": back,
        **storm,
    }


def share(back: list[float], n: int, q: float) -> float | None:
    """Seconds until ``q`` of all ``n`` agents were back; None if they never were."""
    need = max(1, math.ceil(round(q * n, 6)))
    return back[need - 1] if len(back) >= need else None


def online_nodes(cluster: Cluster) -> dict[str, Any]:
    """What auth itself says after the last restart, through the admin CLI."""
    deadline = time.monotonic() + 15
    while True:
        out = cluster.must(
            "mezctl", "nodes", "ls", "--data-dir", str(cluster.data_dir), "--format", "json"
        )
        nodes = json.loads(out)
        online = sum(1 for node in nodes if node["online"])
        if online == len(nodes) or time.monotonic() > deadline:
            return {"listed": len(nodes), "online": online}
        time.sleep(1.0)


def rows(details: dict[str, Any]) -> list[Row]:
    n = details["agents"]
    out: list[Row] = []

    def secs(value: float | None) -> str:
        return "never" if value is None else f"{value:.2f} s"

    for r in details["restarts"]:
        out.append(
            Row(
                "B8",
                f"auth restart {r['restart']}: {n:,} agents acked again (from listening)",
                "s",
                r["all_s"],
                target=TARGET,
                met=r["all_s"] is not None and r["all_s"] <= TARGET_S,
                note=f"50% {secs(r['p50_s'])}, 95% {secs(r['p95_s'])}; {r['missing']} not "
                f"back within {GIVE_UP_S:.0f} s; auth CPU {r['storm_cpu_s']:.1f} s over the "
                f"storm (+{r['startup_cpu_s']:.1f} s start-up); SIGTERM → listening "
                f"{r['down_s']:.1f} s; {r['retries']} failed stream attempts",
            )
        )
    view = details["server_view"]
    out.append(
        Row(
            "B8",
            "nodes online after the last restart (`mezctl nodes ls`)",
            "nodes",
            float(view["online"]),
            target=f"all {n:,}",
            met=view["online"] == n,
            note=f"{view['listed']:,} listed",
        )
    )
    return out


# --- worker ---------------------------------------------------------------------------


def constant(value: T) -> Callable[[], T]:
    return lambda: value


class Retries(logging.Handler):
    """Counts the heartbeat loop's "stream failed; retrying" warnings: failed attempts."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


class Fleet:
    def __init__(self, opts: argparse.Namespace) -> None:
        from agent.presence import DEFAULT_INTERVAL, Heartbeat
        from proto.client import AsyncAuthClient, ClientIdentity

        ca, key = Path(opts.ca).read_bytes(), Path(opts.key).read_bytes()
        docs = [json.loads(line) for line in Path(opts.certs).read_text().splitlines()]
        self.clients: list[AsyncAuthClient] = []
        self.beats: list[Heartbeat] = []
        for i, doc in enumerate(docs[: opts.count]):
            ident = ClientIdentity(agent_id=doc["id"], cert_pem=doc["cert"].encode(), key_pem=key)
            client = AsyncAuthClient(opts.addr, ca, ident)
            addr = f"127.0.0.1:{10_000 + i}"
            self.clients.append(client)
            # mezd's default interval: what matters here is the reconnect, not the beat.
            beat = Heartbeat(constant(client), doc["name"], constant(addr), DEFAULT_INTERVAL)
            self.beats.append(beat)
        self.tasks: list[asyncio.Task[None]] = []
        self.baseline: list[int] = []
        self.retries = Retries()
        self.retries_at_down = 0
        presence_log = logging.getLogger("agent.presence")
        presence_log.addHandler(self.retries)
        presence_log.propagate = False  # N warnings per restart are counted, not printed

    def connected(self) -> int:
        return sum(1 for b in self.beats if b.connected.is_set())

    async def start(self, within: float) -> dict[str, Any]:
        t0 = time.monotonic()
        self.tasks = [asyncio.create_task(b.run()) for b in self.beats]
        waits = [asyncio.create_task(b.connected.wait()) for b in self.beats]
        _, pending = await asyncio.wait(waits, timeout=within)
        for w in pending:
            w.cancel()
        return {"connected": self.connected(), "seconds": time.monotonic() - t0}

    def down(self) -> dict[str, Any]:
        self.baseline = [b.acks for b in self.beats]
        self.retries_at_down = self.retries.count
        return {"connected": self.connected(), "t": time.monotonic()}

    async def wait(self, since: float, within: float) -> dict[str, Any]:
        """Poll every 5 ms for each agent's first ack above its count at ``down``."""
        cpu0 = sum(os.times()[:2])
        acked_at: list[float | None] = [None] * len(self.beats)
        left = len(self.beats)
        while left and time.monotonic() < since + within:
            now = time.monotonic()
            for i, beat in enumerate(self.beats):
                if acked_at[i] is None and beat.acks > self.baseline[i]:
                    acked_at[i] = now
                    left -= 1
            await asyncio.sleep(0.005)
        return {
            "agents": len(self.beats),
            "acked_at": acked_at,
            "retries": self.retries.count - self.retries_at_down,
            "worker_cpu_s": sum(os.times()[:2]) - cpu0,
        }


async def serve_commands(opts: argparse.Namespace) -> None:
    fleet = Fleet(opts)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        cmd = json.loads(line)
        if cmd["op"] == "start":
            reply = await fleet.start(cmd["within"])
        elif cmd["op"] == "down":
            reply = fleet.down()
        elif cmd["op"] == "wait":
            reply = await fleet.wait(cmd["since"], cmd["within"])
        else:
            break
        print(json.dumps(reply), flush=True)
    os._exit(0)  # a thousand channels need no orderly goodbye


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench.b8_storm")
    parser.add_argument("mode", choices=["worker"])
    parser.add_argument("--addr", required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--certs", required=True)
    parser.add_argument("--count", type=int, required=True)
    asyncio.run(serve_commands(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
