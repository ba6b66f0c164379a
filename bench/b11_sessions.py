"""B11 (issue 22's "B8"): new SSH sessions per second one node serves. 16 clients in
flight, each running `ssh NODE true` again and again with a certificate (a new
connection, key exchange, certificate login and exec each time), for a fixed time, to
the Mezite node and to a stock sshd trusting the same user CA, one after the other. The
node's CPU per session counts the server and the per-session processes it reaped."""

from __future__ import annotations

import os
import subprocess
import threading
import time

from bench.lab import Lab
from bench.procstat import cpu_seconds_with_reaped
from bench.results import Outcome, Row, Settings, skipped

IN_FLIGHT = 16
TARGET_RATIO = 1.0


def storm(argv: list[str], env: dict[str, str], seconds: float, pid: int) -> dict[str, float]:
    """``IN_FLIGHT`` loops of ``argv`` for ``seconds``; sessions that exited 0, failures,
    and the server's CPU over the window."""
    ok = failed = 0
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def loop() -> None:
        nonlocal ok, failed
        while time.monotonic() < deadline:
            try:
                done = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL,
                                      capture_output=True, timeout=30, check=False)  # fmt: skip
                good = done.returncode == 0
            except subprocess.TimeoutExpired:
                good = False
            with lock:
                if good:
                    ok += 1
                else:
                    failed += 1

    cpu0, t0 = cpu_seconds_with_reaped(pid), time.monotonic()
    threads = [threading.Thread(target=loop) for _ in range(IN_FLIGHT)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - t0
    cpu = cpu_seconds_with_reaped(pid) - cpu0
    return {
        "sessions": ok,
        "failed": failed,
        "seconds": wall,
        "per_second": ok / wall,
        "server_cpu_s": cpu,
        "cpu_ms_per_session": cpu * 1000 / max(1, ok),
    }


def run(settings: Settings, lab: Lab, node_ok: bool) -> Outcome:
    name = f"new sessions/s (ssh NODE true, {IN_FLIGHT} in flight, certificate login)"
    if not node_ok or lab.target is None or lab.cluster.node is None:
        return Outcome(rows=[skipped("B11", name, "the node did not start")])
    env = {**os.environ, **lab.user_env()}
    seconds = settings.pick(15.0, 4.0)
    sshd = storm(lab.sshd_ssh("true"), env, seconds, lab.target.pid)
    mezd = storm(lab.node_ssh("true"), env, seconds, lab.cluster.node.pid)
    rows = [
        Row(
            "B11",
            name,
            "sessions/s",
            mezd["per_second"],
            "stock sshd, same client and certificate",
            sshd["per_second"],
            target=f"≥ {TARGET_RATIO:.1f}×",  # noqa: RUF001
            met=mezd["per_second"] >= TARGET_RATIO * sshd["per_second"],
            note=f"mezd {mezd['cpu_ms_per_session']:.1f} ms CPU per session, sshd "
            f"{sshd['cpu_ms_per_session']:.1f} ms (with its per-session processes); failed: "
            f"mezd {mezd['failed']:.0f}, sshd {sshd['failed']:.0f}; clients on the same cores",
        )
    ]
    return Outcome(rows=rows, details={"mezd": mezd, "sshd": sshd, "in_flight": IN_FLIGHT})
