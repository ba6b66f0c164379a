"""B7: CLI start-up. `mez --help` and `mez status` (logged in) against `python -c pass`
with the same interpreter and `ssh -V`; hyperfine, no shell."""

from __future__ import annotations

import sys

from bench.cluster import BIN, Cluster
from bench.results import Outcome, Row, Settings
from bench.timing import time_commands


def run(settings: Settings, cluster: Cluster) -> Outcome:
    commands = {
        "mez --help": [str(BIN / "mez"), "--help"],
        "mez status": [str(BIN / "mez"), "status"],
        "python -c pass": [sys.executable, "-c", "pass"],
        "ssh -V": ["ssh", "-V"],
    }
    t = time_commands(
        commands, runs=settings.pick(30, 10), warmup=settings.pick(3, 2), env=cluster.user_env()
    )
    ms = {name: timing.median * 1000 for name, timing in t.items()}
    rows = [
        Row(
            "B7",
            "mez --help, p50",
            "ms",
            ms["mez --help"],
            "python -c pass",
            ms["python -c pass"],
            target="≤ 3×",  # noqa: RUF001
            met=ms["mez --help"] <= 3 * ms["python -c pass"],
            note=f"ssh -V: {ms['ssh -V']:.1f} ms",
        ),
        Row(
            "B7",
            "mez status (logged in, one RPC), p50",
            "ms",
            ms["mez status"],
            "python -c pass",
            ms["python -c pass"],
            target="≤ 6×",  # noqa: RUF001
            met=ms["mez status"] <= 6 * ms["python -c pass"],
        ),
    ]
    return Outcome(rows=rows, details={k: v.as_dict() for k, v in t.items()})
