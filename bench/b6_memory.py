"""B6: memory. Idle mezd RSS and the RSS each concurrent SSH session adds (K sessions of
`ssh -N`), against a stock sshd (listener RSS, and the PSS of the processes it forks per
connection) and a bare `python -c 'import asyncssh, grpc'`. The per-agent slope of the
auth process comes from B4."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.cluster import Cluster
from bench.lab import Lab
from bench.procstat import pss_kb, rss_kb
from bench.results import Outcome, Row, Settings, skipped


def bare_python_kb() -> int:
    code = (
        "import asyncssh, grpc, resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(done.stdout.strip())


def hold_sessions(
    lab: Lab, argv_for: Any, k: int, marks: Path, timeout: float = 30
) -> list[subprocess.Popen[bytes]]:
    """Start ``k`` `ssh -N` sessions; return once every one has authenticated (each
    touches a marker file through LocalCommand after it is in)."""
    marks.mkdir(parents=True, exist_ok=True)
    procs = []
    for i in range(k):
        flags = ("-N", "-o", "PermitLocalCommand=yes", "-o", f"LocalCommand=touch {marks / str(i)}")
        procs.append(
            subprocess.Popen(
                argv_for(flags),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    deadline = time.monotonic() + timeout
    while len(list(marks.iterdir())) < k:
        if time.monotonic() > deadline:
            release(procs)
            raise RuntimeError(f"only {len(list(marks.iterdir()))} of {k} sessions came up")
        time.sleep(0.1)
    time.sleep(1.0)  # let the servers finish setting up the sessions
    return procs


def release(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        with contextlib.suppress(OSError):
            proc.terminate()
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)


def idle(cluster: Cluster) -> dict[str, int]:
    """Measured right after the node starts, before any session."""
    if cluster.node is None:
        return {}
    return {"rss_kb": rss_kb(cluster.node.pid), "pss_kb": pss_kb(cluster.node.pid)}


def run(settings: Settings, cluster: Cluster, lab: Lab, idle_node: dict[str, int]) -> Outcome:
    k = settings.pick(40, 10)
    assert lab.target is not None
    details: dict[str, Any] = {"sessions": k, "mezd_idle": idle_node}
    details["python_import_asyncssh_grpc_kb"] = bare_python_kb()
    details["sshd_idle_rss_kb"] = lab.target.idle_rss_kb()
    rows: list[Row] = []
    work = settings.workdir / "b6"
    before = lab.target.session_pss_kb()
    procs = hold_sessions(lab, lambda f: lab.sshd_ssh(flags=f), k, work / "sshd")
    sshd_after = lab.target.session_pss_kb()
    release(procs)
    sshd_slope = (sshd_after - before) / k
    details["sshd_sessions_pss_kb"] = sshd_after
    if idle_node:
        rows.append(
            Row(
                "B6",
                "mezd idle RSS",
                "MiB",
                idle_node["rss_kb"] / 1024,
                "sshd listener RSS",
                details["sshd_idle_rss_kb"] / 1024,
            )
        )
        rows.append(
            Row(
                "B6",
                "mezd idle RSS vs bare interpreter",
                "MiB",
                idle_node["rss_kb"] / 1024,
                "python -c 'import asyncssh, grpc' (max RSS)",
                details["python_import_asyncssh_grpc_kb"] / 1024,
                target="≤ 1.2×",  # noqa: RUF001
                met=idle_node["rss_kb"] <= 1.2 * details["python_import_asyncssh_grpc_kb"],
            )
        )
    else:
        rows.append(skipped("B6", "mezd idle RSS", "node not running"))
    if cluster.node is not None and cluster.node.alive():
        pid = cluster.node.pid
        start = rss_kb(pid)
        details["mezd_rss_before_sessions_kb"] = start
        if idle_node:
            rows.append(
                Row("B6", "mezd RSS after B2+B3 (bulk uploads), before B6", "MiB", start / 1024,
                    "mezd idle RSS at start", idle_node["rss_kb"] / 1024, target="≤ 1.2×",  # noqa: RUF001
                    met=start <= 1.2 * idle_node["rss_kb"],
                    note="memory the bulk transfers left behind")
            )  # fmt: skip
        try:
            procs = hold_sessions(lab, lambda f: lab.node_ssh(flags=f), k, work / "mezd")
        except RuntimeError as err:
            rows.append(skipped("B6", "per-session memory", f"mezd: {err}"))
        else:
            held = rss_kb(pid)
            release(procs)
            details["mezd_rss_with_sessions_kb"] = held
            slope = (held - start) / k
            rows.append(
                Row(
                    "B6",
                    f"per-session memory ({k} concurrent ssh -N)",
                    "KiB/session",
                    slope,
                    "sshd: PSS of its per-connection processes",
                    sshd_slope,
                    note="mezd: RSS growth of its one process",
                )
            )
    details["sshd_per_session_pss_kb"] = sshd_slope
    return Outcome(rows=rows, details=details)
