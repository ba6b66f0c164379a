"""Wall-clock timing of whole commands: hyperfine when installed (apt-get install
hyperfine), else the same measurement as a plain repeated-timing loop in Python."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.loadgen import percentile


@dataclass
class Timing:
    """Seconds per run of one command."""

    name: str
    runs: int
    median: float
    mean: float
    p99: float
    min: float
    max: float
    tool: str
    times: list[float]

    @classmethod
    def of(cls, name: str, times: Sequence[float], tool: str) -> Timing:
        return cls(
            name=name,
            runs=len(times),
            median=percentile(times, 50),
            mean=sum(times) / len(times),
            p99=percentile(times, 99),
            min=min(times),
            max=max(times),
            tool=tool,
            times=list(times),
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def hyperfine_version() -> str | None:
    exe = shutil.which("hyperfine")
    if exe is None:
        return None
    done = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False)
    return done.stdout.strip() or None


def time_commands(
    commands: Mapping[str, Sequence[str]],
    *,
    runs: int,
    warmup: int,
    env: Mapping[str, str] | None = None,
    timeout: float = 300,
) -> dict[str, Timing]:
    """Each command (an argv, run without a shell) ``warmup`` + ``runs`` times."""
    full_env = {**os.environ, **(env or {})}
    version = hyperfine_version()
    if version is not None:
        return _hyperfine(commands, runs, warmup, full_env, timeout, version)
    return _python_loop(commands, runs, warmup, full_env, timeout)


def _hyperfine(
    commands: Mapping[str, Sequence[str]],
    runs: int,
    warmup: int,
    env: dict[str, str],
    timeout: float,
    version: str,
) -> dict[str, Timing]:
    with tempfile.TemporaryDirectory() as tmp:
        export = Path(tmp) / "out.json"
        argv = [
            "hyperfine",
            "-N",
            "--style",
            "none",
            "--warmup",
            str(warmup),
            "--runs",
            str(runs),
            "--export-json",
            str(export),
        ]
        for name, command in commands.items():
            argv += ["-n", name, shlex.join(command)]
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        if done.returncode != 0:
            raise RuntimeError(f"hyperfine failed: {done.stderr[-1500:]}")
        doc = json.loads(export.read_text())
    return {r["command"]: Timing.of(r["command"], r["times"], version) for r in doc["results"]}


def _python_loop(
    commands: Mapping[str, Sequence[str]],
    runs: int,
    warmup: int,
    env: dict[str, str],
    timeout: float,
) -> dict[str, Timing]:
    out: dict[str, Timing] = {}
    for name, command in commands.items():
        times: list[float] = []
        for i in range(warmup + runs):
            t0 = time.perf_counter()
            done = subprocess.run(
                list(command),
                env=env,
                timeout=timeout,
                check=False,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            elapsed = time.perf_counter() - t0
            if done.returncode != 0:
                raise RuntimeError(f"{name} failed: {done.stderr.decode(errors='replace')[-500:]}")
            if i >= warmup:
                times.append(elapsed)
        out[name] = Timing.of(name, times, "python loop")
    return out
