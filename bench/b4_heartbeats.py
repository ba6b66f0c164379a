"""B4: heartbeats from N simulated agents against a real `mezctl start` process, and the
ListNodes measurements of B5 at the levels where those nodes are online.

N node records are seeded into the backend before auth starts (bench/fleet.py); load
generator processes then hold one real Heartbeat stream per agent over its own TLS
connection, beating every 60 s with ±10% jitter, first beats spread over one interval.
At each level the auth process's own CPU time (from /proc/<pid>/stat) and RSS are read
over a measurement window; ack latency is from each beat's scheduled time."""

from __future__ import annotations

import json
import os
import resource
import select
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import b5_listnodes
from bench.cluster import FLEET_ENV, Cluster
from bench.fleet import CLUSTER
from bench.loadgen import LatencyStats
from bench.procstat import cpu_seconds, rss_kb
from bench.results import Outcome, Row, Settings, run_worker

TARGET_AGENTS = 50_000
PER_GENERATOR = 9000
ACK_P99_TARGET_MS = 100.0  # issue 22
RSS_PER_AGENT_TARGET_KIB = 64.0  # issue 22
INTERVAL = 60.0
GROW_TIMEOUT = 900.0  # seconds for a generator to connect its agents (20k took ~65 s)


def raise_nofile() -> int:
    """Soft limit up to the hard one (children inherit it); returns the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


@dataclass(frozen=True)
class Chunk:
    """Agents ``first`` .. ``first + count - 1`` of the certificate file, on one auth."""

    addr: str
    ca: Path
    first: int
    count: int


def chunks(addr: str, ca: Path, first: int, count: int, per: int = PER_GENERATOR) -> list[Chunk]:
    """``count`` agents from ``first`` on, at most ``per`` to a generator process."""
    return [
        Chunk(addr, ca, start, min(per, first + count - start))
        for start in range(first, first + count, per)
    ]


class Generators:
    """One `python -m bench.fleet gen` process per chunk, driven in step."""

    def __init__(self, certs: Path, parts: list[Chunk]) -> None:
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        self.procs: list[subprocess.Popen[str]] = []
        self.chunks = parts
        for part in parts:
            argv = [
                sys.executable,
                "-m",
                "bench.fleet",
                "gen",
                "--addr",
                part.addr,
                "--ca",
                str(part.ca),
                "--key",
                str(certs.parent / "agent-key.pem"),
                "--certs",
                str(certs),
                "--first",
                str(part.first),
                "--count",
                str(part.count),
                "--interval",
                str(INTERVAL),
            ]
            self.procs.append(
                subprocess.Popen(
                    argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
                )
            )

    @classmethod
    def on(cls, cluster: Cluster, certs: Path, total: int) -> Generators:
        """``total`` agents, all on ``cluster``'s auth (B4)."""
        return cls(certs, chunks(cluster.addr, cluster.data_dir / "admin" / "ca.pem", 0, total))

    def command(self, docs: list[dict[str, Any]], timeout: float) -> list[dict[str, Any]]:
        """Send each generator its command; every reply within ``timeout`` seconds."""
        for proc, doc in zip(self.procs, docs, strict=True):
            assert proc.stdin is not None
            proc.stdin.write(json.dumps(doc) + "\n")
            proc.stdin.flush()
        deadline = time.monotonic() + timeout
        replies = []
        for proc in self.procs:
            assert proc.stdout is not None
            # One flushed line per reply: once readable, readline() has all of it.
            ready, _, _ = select.select(
                [proc.stdout], [], [], max(0.0, deadline - time.monotonic())
            )
            if not ready:
                raise RuntimeError(f"load generator {proc.pid}: no reply in {timeout:.0f}s")
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"load generator {proc.pid} died")
            replies.append(json.loads(line))
        return replies

    def grow(
        self, n: int, timeout: float = GROW_TIMEOUT, deadline: float | None = None
    ) -> list[dict[str, Any]]:
        """Agents up to index ``n`` connected (each generator its share of them); with a
        ``deadline``, each generator gives up on those not connected by then."""
        docs = [
            {"op": "grow", "n": max(0, min(part.count, n - part.first)), "parallel": 48,
             "deadline": deadline}
            for part in self.chunks
        ]  # fmt: skip
        return self.command(docs, timeout)

    def measure(self, seconds: float) -> list[dict[str, Any]]:
        return self.command([{"op": "measure", "seconds": seconds}] * len(self.procs), seconds + 60)

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


def run(settings: Settings, with_b5: bool) -> tuple[Outcome, Outcome]:
    hard = raise_nofile()
    cap = min(TARGET_AGENTS, hard - 600)
    levels = settings.pick(sorted({1000, 10_000, cap}), [1000, 5000])
    registered = settings.pick(TARGET_AGENTS, max(levels))
    window = settings.pick(30.0, 8.0)
    root = settings.workdir / "fleet"
    cluster = Cluster(root, name=CLUSTER)
    certs = root / "certs.jsonl"
    seeded = run_worker(
        "fleet",
        ["seed", "--data-dir", str(cluster.data_dir), "--n", str(registered), "--out", str(certs)],
        timeout=600,
    )
    cluster.start_auth(FLEET_ENV)
    assert cluster.auth is not None
    pid = cluster.auth.pid
    gens = Generators.on(cluster, certs, max(levels))
    details: dict[str, Any] = {
        "seed": seeded,
        "nofile_hard_limit": hard,
        "levels": {},
        "interval_s": INTERVAL,
        "window_s": window,
    }
    b5: dict[str, Any] = {}
    try:
        details["idle_rss_kb"] = rss_kb(pid)
        for level in levels:
            cpu0, t0 = cpu_seconds(pid), time.monotonic()
            grown = gens.grow(level)
            connect_cpu = cpu_seconds(pid) - cpu0
            live = sum(g["live"] for g in grown)
            time.sleep(2.0)
            cpu0, t0 = cpu_seconds(pid), time.monotonic()
            gen_cpu0 = sum(cpu_seconds(p) for p in gens.pids())
            measured = gens.measure(window)
            wall = time.monotonic() - t0
            cores = (cpu_seconds(pid) - cpu0) / wall
            gen_cores = (sum(cpu_seconds(p) for p in gens.pids()) - gen_cpu0) / wall
            samples = [s for m in measured for s in m.pop("samples_s")]
            acks = LatencyStats.of(samples, sum(m["errors"] for m in measured), window)
            details["levels"][level] = {
                "live": live,
                "grow": grown,
                "connect_cpu_s": connect_cpu,
                "auth_cores": cores,
                "auth_rss_kb": rss_kb(pid),
                "generator_cores": gen_cores,
                "acks": acks.as_dict(),
                "beats_per_s": acks.count / window,
            }
            if with_b5 and level >= settings.pick(10_000, 5000):
                b5[str(level)] = b5_listnodes.measure(
                    cluster.addr, cluster.data_dir / "admin", repeat=settings.pick(3, 2)
                )
                b5[str(level)]["source"] = "real heartbeat streams (mezctl start)"
                b5[str(level)]["sql"] = b5_listnodes.raw_sql(
                    cluster.data_dir / "backend.sqlite", limit=level
                )
    finally:
        gens.stop()
        cluster.stop()
    if with_b5 and not settings.quick:
        b5[str(TARGET_AGENTS)] = filled_listnodes(cluster, settings)
    return b4_rows(details, levels), b5_rows(b5, details)


def filled_listnodes(cluster: Cluster, settings: Settings) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.b5_listnodes",
            "serve",
            "--data-dir",
            str(cluster.data_dir),
            "--cluster",
            CLUSTER,
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        ready = json.loads(proc.stdout.readline())
        out = b5_listnodes.measure(ready["addr"], cluster.data_dir / "admin", repeat=3)
        out["source"] = f"AuthServer with presence filled in-process ({ready['online']} online)"
        out["sql"] = b5_listnodes.raw_sql(cluster.data_dir / "backend.sqlite", limit=TARGET_AGENTS)
        return out
    finally:
        proc.terminate()
        proc.wait(30)


def b4_rows(details: dict[str, Any], levels: list[int]) -> Outcome:
    rows: list[Row] = []
    lv = details["levels"]
    for level in levels:
        d = lv[level]
        acks = d["acks"]
        rows.append(
            Row(
                "B4",
                f"auth CPU, {d['live']:,} agents beating every 60 s",
                "cores",
                d["auth_cores"],
                note=f"RSS {d['auth_rss_kb'] / 1024:,.0f} MiB; ack p50 {acks['p50']:.1f} / "
                f"p99 {acks['p99']:.1f} ms over {acks['count']} beats; "
                f"{d['connect_cpu_s'] * 1000 / max(1, d['live'] - prev_live(lv, level)):.1f}"
                " ms auth CPU per agent connect",
            )
        )
    # 50,000 agents do not fit one process's descriptors here: B4' (b4p_ha.py) measures
    # them on three auth servers.
    top = max(levels)
    p99 = lv[top]["acks"]["p99"]
    rows.append(
        Row("B4", f"heartbeat ack p99 at {lv[top]['live']:,} agents", "ms", p99,
            target=f"≤ {ACK_P99_TARGET_MS:.0f} ms", met=p99 <= ACK_P99_TARGET_MS)
    )  # fmt: skip
    if len(levels) >= 2:
        slope_kb = (lv[top]["auth_rss_kb"] - lv[levels[0]]["auth_rss_kb"]) / (top - levels[0])
        rows.append(
            Row(
                "B6",
                "auth RSS per connected agent (B4 slope)",
                "KiB/agent",
                slope_kb,
                target=f"≤ {RSS_PER_AGENT_TARGET_KIB:.0f} KiB",
                met=slope_kb <= RSS_PER_AGENT_TARGET_KIB,
                note=f"{levels[0]:,} → {top:,} agents",
            )
        )
    return Outcome(rows=rows, details=details)


def prev_live(levels: dict[int, Any], level: int) -> int:
    below = [lv for lv in levels if lv < level]
    return levels[max(below)]["live"] if below else 0


def b5_rows(b5: dict[str, Any], fleet: dict[str, Any]) -> Outcome:
    rows: list[Row] = []
    for key, doc in sorted(b5.items(), key=lambda kv: int(kv[0])):
        level = int(key)
        default, biggest, sql = doc["default_page"], doc["max_page"], doc["sql"]
        big = level >= TARGET_AGENTS
        src = "in-process presence" if "filled" in doc["source"] else "real heartbeats"
        rows.append(
            Row(
                "B5",
                f"ListNodes full walk, {default['nodes']:,} online ({src}), "
                f"default page ({default['pages']} pages)",
                "ms",
                default["walk_s"] * 1000,
                "raw SQL SELECT of the same rows",
                sql["select_s"] * 1000,
                target=f"≤ {b5_listnodes.WALK_TARGET_S * 1000:,.0f} ms at 50k" if big else "",
                met=default["walk_s"] <= b5_listnodes.WALK_TARGET_S if big else None,
                note=f"SELECT + JSON decode {sql['select_decode_s'] * 1000:.0f} ms",
            )
        )
        rows.append(
            Row(
                "B5",
                f"ListNodes full walk, {biggest['nodes']:,} online, 1000/page",
                "ms",
                biggest["walk_s"] * 1000,
                "raw SQL SELECT",
                sql["select_s"] * 1000,
                target=f"≤ {b5_listnodes.WALK_TARGET_S * 1000:,.0f} ms at 50k" if big else "",
                met=biggest["walk_s"] <= b5_listnodes.WALK_TARGET_S if big else None,
            )
        )
        rows.append(
            Row(
                "B5",
                f"ListNodes first page, {default['nodes']:,} online",
                "ms",
                default["first_page_s"] * 1000,
                target=f"≤ {b5_listnodes.FIRST_PAGE_TARGET_MS:.0f} ms" if big else "",
                met=default["first_page_s"] * 1000 <= b5_listnodes.FIRST_PAGE_TARGET_MS
                if big
                else None,
            )
        )
    if not rows:
        rows.append(Row("B5", "ListNodes", "", None, note="not run"))
    return Outcome(rows=rows, details={"levels": b5, "registered": fleet.get("seed", {})})
