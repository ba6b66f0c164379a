"""Result rows shared by every benchmark, and the context they run in."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Row:
    """One line of the results table. ``ratio`` is Mezite ÷ peer (for a latency lower is
    better, for a rate higher is better); ``met`` is None where there is no target or
    the benchmark could not run."""

    bench: str
    name: str
    unit: str
    mezite: float | None
    peer_name: str = ""
    peer: float | None = None
    target: str = ""
    met: bool | None = None
    note: str = ""
    ratio: float | None = None

    def __post_init__(self) -> None:
        if self.ratio is None and self.mezite is not None and self.peer:
            self.ratio = self.mezite / self.peer

    def as_dict(self) -> dict[str, Any]:
        return {
            k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in asdict(self).items()
        }


def skipped(bench: str, name: str, reason: str, target: str = "") -> Row:
    return Row(bench=bench, name=name, unit="", mezite=None, target=target, note=reason)


@dataclass
class Settings:
    quick: bool
    workdir: Path

    def pick(self, full: Any, quick: Any) -> Any:
        return quick if self.quick else full


@dataclass
class Outcome:
    """What one benchmark hands back: table rows and any detail for results.json."""

    rows: list[Row] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def run_worker(module: str, args: list[str], timeout: float) -> dict[str, Any]:
    """``python -m bench.<module> ...`` in its own process (gRPC never runs in the
    orchestrator, which forks OpenSSH); its last stdout line is JSON."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{module}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=env,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(
            f"bench.{module} worker failed ({done.returncode}): {done.stderr[-2000:]}"
        )
    doc: dict[str, Any] = json.loads(lines[-1])
    return doc


def fmt(value: float | None, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if abs(value) >= 1000:
        text = f"{value:,.0f}"
    elif abs(value) >= 100:
        text = f"{value:.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".strip()
