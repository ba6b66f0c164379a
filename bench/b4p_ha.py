"""B4': 50,000 agents measured, not extrapolated. One process may hold at most 20,000
descriptors here and every agent holds its own connection, so the fleet is spread over
three `mezctl start` auth servers on one throwaway PostgreSQL: the HA layout a
deployment of that size runs anyway.

The node records are seeded into PostgreSQL before any server starts (bench/fleet.py
seed --dsn); each server then gets a third of the agents, each agent one real Heartbeat
stream (and lock stream) on its own TLS connection to that server, beating every 60 s
with ±10% jitter. Each server's CPU (utime+stime from /proc/<pid>/stat) and RSS are
read over the connect phase and over a window once all are connected; ack latency is
from each beat's scheduled time, per server and overall. PostgreSQL's own CPU (the
postmaster and its backends) is reported beside, as is what each server logged at
WARNING or above."""

from __future__ import annotations

import contextlib
import math
import os
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.b4_heartbeats import (
    ACK_P99_TARGET_MS,
    PER_GENERATOR,
    Chunk,
    Generators,
    chunks,
    raise_nofile,
)
from bench.cluster import FLEET_ENV, Cluster, stop_all
from bench.fleet import CLUSTER
from bench.loadgen import LatencyStats
from bench.pg import Postgres, leases, presence_owners
from bench.procstat import cpu_seconds, descendants, rss_kb
from bench.results import Outcome, Row, Settings, run_worker

AGENTS = 50_000
SERVERS = 3
QUICK_AGENTS = 900
CORES_TARGET = 1.0  # issue 22: auth CPU < 1 core in total at 50,000 agents
# Fewer agents for developing the benchmark itself; the target applies only at 50,000.
AGENTS_ENV = "MEZITE_BENCH_B4P_AGENTS"
SEED_TIMEOUT = 600.0
# The connect phase ends after this; agents not connected by then count as failed. On
# 2 cores 37,000 of 50,000 were connected after 12 minutes, when connects stalled.
GROW_TIMEOUT = 900.0
ANNOUNCE_TIMEOUT = 300.0
NOFILE_SPARE = 600  # descriptors a server needs besides its agents'


def fleet_size(settings: Settings) -> int:
    override = os.environ.get(AGENTS_ENV, "")
    return int(override) if override else int(settings.pick(AGENTS, QUICK_AGENTS))


def spread(total: int, servers: list[tuple[str, Path]]) -> list[list[Chunk]]:
    """Agents 0..total-1 in contiguous shares as even as can be, one share per server;
    each share in equal generator chunks of at most PER_GENERATOR agents."""
    out, first = [], 0
    for i, (addr, ca) in enumerate(servers):
        share = total // len(servers) + (1 if i < total % len(servers) else 0)
        per = math.ceil(share / max(1, math.ceil(share / PER_GENERATOR))) if share else 1
        out.append(chunks(addr, ca, first, share, per))
        first += share
    return out


def postgres_pids(pg: Postgres) -> list[int]:
    """The postmaster and every backend it has forked now."""
    with contextlib.suppress(OSError, ValueError):
        postmaster = int((pg.base / "data" / "postmaster.pid").read_text().split()[0])
        return [postmaster, *descendants(postmaster)]
    return []


def presence_count(pg: Postgres) -> int:
    found = pg.rows(
        "SELECT count(*) FROM mezite_kv WHERE key >= %s AND key < %s", ("presence/", "presence0")
    )
    return int(found[0][0])


def wait_announced(pg: Postgres, live: int, since: float, timeout: float) -> dict[str, Any]:
    """Poll until ``live`` presence items are in PostgreSQL (or ``timeout`` has passed):
    seconds from ``since`` (the connect phase's start), and how many were there."""
    deadline = time.monotonic() + timeout
    timeline: list[tuple[float, int]] = []
    errors: Counter[str] = Counter()
    count = 0
    while True:
        # A loaded PostgreSQL can refuse this poll (the second full run died of a 5 s
        # connect timeout here): that is a poll missed, not the end of the benchmark.
        try:
            count = presence_count(pg)
            timeline.append((time.monotonic() - since, count))
        except Exception as exc:
            errors[f"{type(exc).__name__}: {exc}"[:200]] += 1
        if count >= live or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    seconds = timeline[-1][0] if timeline else time.monotonic() - since
    return {"seconds": seconds, "items": count, "timeline": timeline, "poll_errors": dict(errors)}


def cpu_of(pids: list[int]) -> dict[int, float]:
    out = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            out[pid] = cpu_seconds(pid)
    return out


def spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds between two readings; a process new since ``before`` counts from 0."""
    return sum(t - before.get(pid, 0.0) for pid, t in after.items())


LOG_LINE = re.compile(r" (WARNING|ERROR|CRITICAL) (\S+): (.*)")


def log_findings(log: Path) -> dict[str, Any]:
    """What a server logged at WARNING or above, counted by message (digits and hex ids
    folded), and how many tracebacks."""
    found: Counter[str] = Counter()
    tracebacks = 0
    with contextlib.suppress(OSError):
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("Traceback"):
                tracebacks += 1
            match = LOG_LINE.search(line)
            if match:
                text = re.sub(r"[0-9a-f]{8,}|\d+", "N", match.group(3))[:200]
                found[f"{match.group(1)} {match.group(2)}: {text}"] += 1
    return {"tracebacks": tracebacks, "messages": dict(found.most_common(10))}


def run(settings: Settings) -> Outcome:
    hard = raise_nofile()
    total = fleet_size(settings)
    if math.ceil(total / SERVERS) > hard - NOFILE_SPARE:
        raise RuntimeError(
            f"{math.ceil(total / SERVERS):,} agents per server do not fit RLIMIT_NOFILE {hard:,}"
        )
    window = float(settings.pick(30.0, 8.0))
    root = settings.workdir / "b4p"
    certs = root / "certs.jsonl"
    pg = Postgres()
    servers: list[Cluster] = []
    gens: Generators | None = None
    details: dict[str, Any] = {
        "agents": total,
        "servers": SERVERS,
        "interval_s": 60.0,
        "window_s": window,
        "nofile_hard_limit": hard,
    }
    try:
        t_start = time.monotonic()
        pg.start()
        env = {**FLEET_ENV, "MEZITE_BACKEND_TYPE": "postgres", "MEZITE_BACKEND_DSN": pg.dsn}
        details["seed"] = run_worker(
            "fleet",
            ["seed", "--data-dir", str(root / "seed"), "--n", str(total), "--out", str(certs),
             "--dsn", pg.dsn],
            timeout=SEED_TIMEOUT,
        )  # fmt: skip
        lease_of: list[str] = []
        for i in range(SERVERS):
            before = leases(pg)
            server = Cluster(root / f"auth{i + 1}", name=CLUSTER)
            servers.append(server)
            server.start_auth(env)
            new = leases(pg) - before
            lease_of.append(new.pop() if len(new) == 1 else "")
        pids = [s.auth.pid for s in servers if s.auth is not None]
        idle_rss = [rss_kb(pid) for pid in pids]
        shares = spread(total, [(s.addr, s.data_dir / "admin" / "ca.pem") for s in servers])
        parts = [part for share in shares for part in share]
        owner = [i for i, share in enumerate(shares) for _ in share]  # server of each chunk
        gens = Generators(certs, parts)
        details["setup_s"] = time.monotonic() - t_start

        start_cpu, start_pg, t0 = cpu_of(pids), cpu_of(postgres_pids(pg)), time.monotonic()
        grown = gens.grow(total, GROW_TIMEOUT + 120, deadline=GROW_TIMEOUT)
        connect_wall = time.monotonic() - t0
        connect_cpu = {p: t - start_cpu[p] for p, t in cpu_of(pids).items()}
        connect_pg = spent(start_pg, cpu_of(postgres_pids(pg)))
        # Each server announces its nodes' presence in PostgreSQL after they connect, one
        # write per node; the steady state starts once every connected node is there.
        live = sum(g["live"] for g in grown)
        announced = wait_announced(pg, live, t0, ANNOUNCE_TIMEOUT)
        settle_cpu = {p: t - start_cpu[p] - connect_cpu[p] for p, t in cpu_of(pids).items()}
        time.sleep(2.0)

        cpu0, pg0, t0 = cpu_of(pids), cpu_of(postgres_pids(pg)), time.monotonic()
        gen0 = cpu_of(gens.pids())
        measured = gens.measure(window)
        wall = time.monotonic() - t0
        cpu2, pg2, gen2 = cpu_of(pids), cpu_of(postgres_pids(pg)), cpu_of(gens.pids())
        rss = [rss_kb(pid) for pid in pids]
        gen_rss = [rss_kb(pid) for pid in gens.pids()]
        try:
            held = Counter(presence_owners(pg).values())
        except Exception as exc:  # as in wait_announced: the count is missing, not the run
            held = Counter()
            details["presence_error"] = f"{type(exc).__name__}: {exc}"[:200]
        under_load = [log_findings(s.root / "auth.log") for s in servers]
    finally:
        if gens is not None:
            gens.stop()
        stop_all([s.auth for s in servers if s.auth is not None])
        pg.stop()

    per_server = []
    all_samples: list[float] = []
    errors = 0
    for i, server in enumerate(servers):
        mine = [k for k, o in enumerate(owner) if o == i]
        samples = [s for k in mine for s in measured[k]["samples_s"]]
        errs = sum(measured[k]["errors"] for k in mine)
        all_samples += samples
        errors += errs
        pid = pids[i]
        per_server.append(
            {
                "addr": server.addr,
                "pid": pid,
                "lease": lease_of[i],
                "agents": sum(parts[k].count for k in mine),
                "live": sum(grown[k]["live"] for k in mine),
                "failed": sum(grown[k]["failed"] for k in mine),
                "late": sum(grown[k].get("late", 0) for k in mine),
                "beating_after_window": sum(measured[k]["beating"] for k in mine),
                "presence_items": held.get(lease_of[i], 0),
                "connect_cpu_s": connect_cpu[pid],
                "announce_cpu_s": settle_cpu[pid],
                "cores": (cpu2[pid] - cpu0[pid]) / wall,
                "rss_kb": rss[i],
                "idle_rss_kb": idle_rss[i],
                "acks": LatencyStats.of(samples, errs, window).as_dict(),
                "log": under_load[i],
                "log_with_shutdown": log_findings(server.root / "auth.log"),
            }
        )
    details.update(
        {
            "per_server": per_server,
            "grow": grown,
            "connect_wall_s": connect_wall,
            "announced": announced,
            "window_wall_s": wall,
            "auth_cores": sum(s["cores"] for s in per_server),
            "auth_rss_kb": sum(rss),
            "postgres_cores": spent(pg0, pg2) / wall,
            "postgres_connect_cpu_s": connect_pg,
            "generator_cores": spent(gen0, gen2) / wall,
            "generator_rss_kb": sum(gen_rss),
            "acks": LatencyStats.of(all_samples, errors, window).as_dict(),
            "ack_samples_s": all_samples,
            "presence_items": sum(held.values()),
        }
    )
    return Outcome(rows=rows(details), details=details)


def rows(d: dict[str, Any]) -> list[Row]:
    """The total against issue 22's target (only at 50,000, every agent connected), each
    server, PostgreSQL and the connect phase as context."""
    servers = d["per_server"]
    live = sum(s["live"] for s in servers)
    full = d["agents"] >= AGENTS
    acks = d["acks"]
    beating = sum(s.get("beating_after_window", s["live"]) for s in servers)
    short = "" if live == d["agents"] else f"; only {live:,} of {d['agents']:,} connected"
    if beating < live:
        short += f", {beating:,} still beating after the window"
    out = [
        Row(
            "B4'",
            f"auth CPU in total, {live:,} agents on {len(servers)} auth servers "
            "(one PostgreSQL), beating every 60 s",
            "cores",
            d["auth_cores"],
            target=f"< {CORES_TARGET:.0f} core at {AGENTS:,}" if full else "",
            # Not holding every agent misses the target whatever the CPU of the rest.
            met=(d["auth_cores"] < CORES_TARGET and live == d["agents"]) if full else None,
            note=f"measured, not extrapolated; RSS {d['auth_rss_kb'] / 1024**2:.1f} GiB in "
            f"total; ack p50 {acks['p50']:.1f} / p99 {acks['p99']:.1f} ms over "
            f"{acks['count']:,} beats; PostgreSQL {d['postgres_cores']:.2f} cores{short}",
        )
    ]
    for i, s in enumerate(servers, 1):
        a = s["acks"]
        out.append(
            Row(
                "B4'",
                f"auth server {i} of {len(servers)}: CPU, {s['live']:,} agents",
                "cores",
                s["cores"],
                note=f"RSS {s['rss_kb'] / 1024:,.0f} MiB ({s['idle_rss_kb'] / 1024:,.0f} idle); "
                f"ack p50 {a['p50']:.1f} / p99 {a['p99']:.1f} ms over {a['count']:,} beats; "
                f"{s['presence_items']:,} presence items held"
                + (f"; {s['failed']:,} failed to connect" if s.get("failed") else "")
                + (
                    f"; {s['live'] - s['beating_after_window']:,} streams ended"
                    if s.get("beating_after_window", s["live"]) < s["live"]
                    else ""
                ),
            )
        )
    p99 = acks["p99"]
    out.append(
        Row("B4'", f"heartbeat ack p99 at {live:,} agents, all servers", "ms", p99,
            target=f"≤ {ACK_P99_TARGET_MS:.0f} ms" if full else "",
            met=p99 <= ACK_P99_TARGET_MS if full else None)
    )  # fmt: skip
    connect = sum(s["connect_cpu_s"] for s in servers)
    out.append(
        Row(
            "B4'",
            f"connect phase: auth CPU for {live:,} agents",
            "s",
            connect,
            note=f"{connect * 1000 / max(1, live):.1f} ms per agent connect, "
            f"{d['connect_wall_s']:.0f} s wall; PostgreSQL {d['postgres_connect_cpu_s']:.0f} s CPU",
        )
    )
    ann = d["announced"]
    settle = sum(s["announce_cpu_s"] for s in servers)
    out.append(
        Row(
            "B4'",
            f"presence of {ann['items']:,} nodes written to PostgreSQL, from the first connect",
            "s",
            ann["seconds"],
            note=f"auth CPU {settle:.0f} s after the connect phase until then; the window "
            "starts after it" + ("" if ann["items"] >= live else f"; {live:,} connected"),
        )
    )
    return out
