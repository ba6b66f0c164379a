"""B2: `mez ssh NODE true` (new connection, cached certificate) against OpenSSH's ssh to
a stock sshd, direct and through a second sshd with -J. hyperfine, no shell.

Mezite is measured twice: `mez ssh` through the Mezite proxy (logged in with
`mez login --proxy`; the path the target compares with OpenSSH's `ssh -J`), and direct to
the node."""

from __future__ import annotations

import os
import subprocess
import time

from bench.lab import Lab
from bench.results import Outcome, Row, Settings, skipped
from bench.timing import Timing, time_commands

TARGET = "≤ 1.0× ssh -J"  # noqa: RUF001


def timed_runs(
    lab: Lab,
    argv: list[str],
    runs: int,
    warmup: int,
    timeout: float,
    user_env: dict[str, str] | None = None,
) -> tuple[list[float], list[str]]:
    """Wall time of each run that exited 0 within ``timeout``; failures listed apart.
    Used for the Mezite paths instead of hyperfine, which has no per-run timeout: a run
    that hangs must cost seconds, not the whole benchmark."""
    times: list[float] = []
    failures: list[str] = []
    env = {**os.environ, **(user_env or lab.user_env())}
    for i in range(warmup + runs):
        t0 = time.perf_counter()
        try:
            done = subprocess.run(
                argv,
                capture_output=True,
                timeout=timeout,
                env=env,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            failures.append(f"run {i + 1}: hung > {timeout:.0f}s")
            continue
        elapsed = time.perf_counter() - t0
        if done.returncode != 0:
            failures.append(f"run {i + 1}: exit {done.returncode}")
        elif i >= warmup:
            times.append(elapsed)
    return times, failures


def run(settings: Settings, lab: Lab, node_ok: bool) -> Outcome:
    runs, warmup = settings.pick(30, 10), settings.pick(3, 2)
    peers = {
        "ssh → sshd": lab.sshd_ssh("true"),
        "ssh -J sshd → sshd": lab.sshd_ssh("true", jump=True),
    }
    timings = time_commands(peers, runs=runs, warmup=warmup, env=lab.user_env(), timeout=600)
    failures: dict[str, list[str]] = {}
    argvs = dict(peers)
    if node_ok:
        candidates = {
            "mez ssh node true": lab.mez_ssh("true"),
            "ssh → mezd (mez's options + pinned algorithms)": lab.node_ssh("true"),
        }
        for name, argv in candidates.items():
            argvs[name] = argv
            # Same no-shell, warm-up-then-runs protocol as hyperfine, plus a timeout.
            times, failed = timed_runs(lab, argv, runs, warmup, timeout=5.0)
            failures[name] = failed
            if times:
                timings[name] = Timing.of(name, times, "python loop with per-run timeout")
        if lab.cluster.mez_login_proxy():
            name = "mez ssh node true (via the Mezite proxy)"
            argvs[name] = lab.mez_ssh("true")
            times, failed = timed_runs(
                lab, argvs[name], runs, warmup, timeout=5.0, user_env=lab.cluster.proxy_env()
            )
            failures[name] = failed
            if times:
                timings[name] = Timing.of(name, times, "python loop with per-run timeout")
    direct, jump = timings["ssh → sshd"], timings["ssh -J sshd → sshd"]
    rows: list[Row] = []
    mez = timings.get("mez ssh node true")
    total = runs + warmup
    via_proxy = timings.get("mez ssh node true (via the Mezite proxy)")
    if via_proxy is not None:
        rows.append(
            Row(
                "B2",
                "mez ssh NODE true via the Mezite proxy, p50",
                "ms",
                via_proxy.median * 1000,
                "ssh -J sshd → sshd p50",
                jump.median * 1000,
                target=TARGET,
                met=via_proxy.median <= jump.median,
                note=f"p99 {via_proxy.p99 * 1000:.0f} ms vs ssh -J p99 {jump.p99 * 1000:.0f} ms",
            )
        )
    if mez is not None:
        note = (
            f"p99 {mez.p99 * 1000:.0f} ms vs ssh -J p99 {jump.p99 * 1000:.0f} ms; direct to "
            "the node, not through the Mezite proxy"
        )
        rows.append(
            Row(
                "B2",
                "mez ssh NODE true, p50",
                "ms",
                mez.median * 1000,
                "ssh -J sshd → sshd p50",
                jump.median * 1000,
                # The target belongs to the proxied path when there is one.
                target=TARGET if via_proxy is None else "",
                met=(mez.median <= jump.median) if via_proxy is None else None,
                note=note,
            )
        )
        rows.append(
            Row(
                "B2",
                "mez ssh NODE true, p50 (vs direct)",
                "ms",
                mez.median * 1000,
                "ssh → sshd p50",
                direct.median * 1000,
            )
        )
    else:
        rows.append(skipped("B2", "mez ssh NODE true, p50", "node not running", TARGET))
    raw = timings.get("ssh → mezd (mez's options + pinned algorithms)")
    if raw is not None:
        rows.append(
            Row(
                "B2",
                "ssh → mezd node true, p50 (no mez wrapper)",
                "ms",
                raw.median * 1000,
                "ssh → sshd p50",
                direct.median * 1000,
                note="same client, same algorithms: the node's handshake and exec",
            )
        )
    if node_ok:
        bad = {k: len(v) for k, v in failures.items()}
        rows.append(
            Row(
                "B2",
                "runs of `true` on mezd that hung or failed",
                "runs",
                float(sum(bad.values())),
                target="0",
                met=not any(bad.values()),
                note=f"of {2 * total} (timeout 5 s): "
                + "; ".join(f"{k}: {v}" for k, v in bad.items()),
            )
        )
    details = {
        "timings": {k: v.as_dict() for k, v in timings.items()},
        "failures": failures,
        "argv": argvs,
        "mezite_proxy": "measured" if via_proxy is not None else "absent",
    }
    return Outcome(rows=rows, details=details)
