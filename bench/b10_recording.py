"""B10: what session recording costs a PTY session. `ssh -tt` to mezd runs
`head -c SIZE /dev/zero | tr '\\0' x` (all of it through the terminal, every byte
recorded), as a user whose role records (the default) and as one whose role says
`record_sessions: false`, alternately, same client, same cipher. Wall time of the whole
command; MB/s = 10^6 bytes/s. Output stays under mezd's default 64 MiB cap, so the
recorded runs record all of it."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.cluster import BIN, PASSWORD
from bench.lab import Lab
from bench.results import Outcome, Row, Settings, skipped

TARGET_RATIO = 0.95
MIB = 1024 * 1024
NO_RECORD_USER = "bench-norec"
NO_RECORD_ROLE = """kind: role
metadata:
  name: norecord
spec:
  allow:
    logins: ["{{internal.logins}}"]
    node_labels:
      "*": ["*"]
  options:
    permit_pty: true
    record_sessions: false
"""


def _unrecorded_profile(lab: Lab) -> tuple[dict[str, str], Path]:
    """A second user, of the no-record role, logged in under a home of its own."""
    cluster = lab.cluster
    role = cluster.root / "norecord.yaml"
    role.write_text(NO_RECORD_ROLE)
    data = str(cluster.data_dir)
    cluster.must("mezctl", "create", "-f", str(role), "--data-dir", data)
    cluster.must("mezctl", "users", "add", NO_RECORD_USER, "--roles", "norecord",
                 "--logins", cluster.login, "--password-stdin", "--data-dir", data,
                 stdin=PASSWORD + "\n")  # fmt: skip
    env = {**cluster.user_env(), "MEZITE_HOME": str(cluster.root / "mezite-home-norec")}
    done = subprocess.run(
        [str(BIN / "mez"), "login", "--auth", cluster.addr, "--user", NO_RECORD_USER,
         "--password-stdin", "--ca-pin", cluster.pin],
        input=PASSWORD + "\n", capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, **env},
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"mez login {NO_RECORD_USER}: {done.stderr.strip()[-300:]}")
    return env, Path(env["MEZITE_HOME"]) / cluster.name


def _once(argv: list[str], env: dict[str, str], size: int) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        timeout=max(60.0, size / 2e6), env={**os.environ, **env}, check=False,
    )  # fmt: skip
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"exit {done.returncode}: {done.stderr.decode()[-300:]}")
    return elapsed


def _drained(spool: Path, timeout: float = 120) -> float:
    """Seconds until mezd has converted and uploaded what it recorded (its spool empty):
    the next run starts after that, so neither side pays for the other's upload."""
    t0 = time.perf_counter()
    while spool.is_dir() and any(spool.iterdir()):
        if time.perf_counter() - t0 > timeout:
            raise RuntimeError(f"recordings still spooled after {timeout:.0f}s")
        time.sleep(0.05)
    return time.perf_counter() - t0


def run(settings: Settings, lab: Lab, node_ok: bool) -> Outcome:
    size = settings.pick(48, 24) * MIB
    runs = settings.pick(11, 3)
    target = f"≥ {TARGET_RATIO}×"  # noqa: RUF001
    if not node_ok:
        return Outcome(rows=[skipped("B10", "PTY output, recorded", "node not running", target)])
    env_off, profile_off = _unrecorded_profile(lab)
    command = f"head -c {size} /dev/zero | tr '\\0' x"
    argv_on = lab.node_ssh(command, flags=("-tt",))
    argv_off = lab.node_ssh(command, flags=("-tt",), profile=profile_off)
    spool = lab.cluster.root / "node-data" / "recordings"
    times: dict[str, list[float]] = {"on": [], "off": []}
    drain: list[float] = []
    for _ in range(runs):  # alternately, so a busy moment of the machine hits both
        times["on"].append(_once(argv_on, lab.user_env(), size))
        drain.append(_drained(spool))
        times["off"].append(_once(argv_off, env_off, size))
    mbps = {k: sorted(size / t / 1e6 for t in v) for k, v in times.items()}
    median = {k: v[len(v) // 2] for k, v in mbps.items()}
    details: dict[str, Any] = {
        "bytes": size, "runs": runs, "seconds": times, "mb_per_s": mbps,
        "seconds_to_upload": drain,
    }  # fmt: skip
    row = Row(
        "B10",
        f"{size // MIB} MiB through a PTY (ssh -tt → mezd), recorded",
        "MB/s",
        median["on"],
        "the same, recording off (role record_sessions: false)",
        median["off"],
        target=target,
        met=median["on"] >= TARGET_RATIO * median["off"],
    )
    upload = Row(
        "B10",
        f"{size // MIB} MiB recording: session end → converted, uploaded, spool empty",
        "s",
        sorted(drain)[len(drain) // 2],
        note="after the session, at low priority; not charged to it",
    )
    return Outcome(rows=[row, upload], details=details)
