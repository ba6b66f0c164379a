"""A node comes back after every restart of auth, not only the first: real `mezctl start`
restarted on the same port and data dir (SIGTERM, start again), a real `mezd`, and the
user's `mez ls`. Before the heartbeat's backoff was reset by a healthy stream, each restart
doubled the wait (its attempt count only grew), so the third or fourth restart here, and
in the original report the second, took 20-50 s."""

from __future__ import annotations

import getpass
import json
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.e2e.procs import (
    cli,
    cluster_pin,
    free_port,
    join_node,
    mez_env,
    mezctl_start,
    mezd_start,
)

pytestmark = pytest.mark.e2e

PASSWORD = "a long enough password"
RESTARTS = 5
DOWN = 1.0  # seconds between auth's exit and its next start, as in the report
# A bound, not a timing assertion: the target (every node back within 10 s of a short
# restart) plus slack for `mez ls` processes on a loaded 2-core machine. The old
# schedule took 37-51 s from the second restart on.
BACK_WITHIN = 10.0 + 5.0


def listed(env: dict[str, str]) -> list[str]:
    done = cli("mez", "ls", "--format", "json", env=env, timeout=30)
    assert done.returncode == 0, done.stderr
    return [node["name"] for node in json.loads(done.stdout)]


def seconds_until_listed(env: dict[str, str], name: str, within: float) -> float | None:
    start = time.monotonic()
    while time.monotonic() - start < within:
        if name in listed(env):
            return time.monotonic() - start
        time.sleep(0.2)
    return None


def test_node_is_listed_again_after_every_auth_restart(tmp_path: Path) -> None:
    data, port = tmp_path / "auth", free_port()
    env = mez_env(tmp_path / "user")
    with ExitStack() as stack:
        auth = stack.enter_context(mezctl_start(data, listen=f"127.0.0.1:{port}"))
        add = cli("mezctl", "users", "add", "alice", "--roles", "access",
                  "--logins", getpass.getuser(), "--password-stdin",
                  "--data-dir", str(data), stdin=PASSWORD + "\n")  # fmt: skip
        assert add.returncode == 0, add.stderr
        login = cli("mez", "login", "--auth", auth.addr, "--user", "alice", "--password-stdin",
                    "--ca-pin", cluster_pin(data), stdin=PASSWORD + "\n", env=env)  # fmt: skip
        assert login.returncode == 0, login.stderr
        node_port = free_port()
        join_node(auth, tmp_path / "node", "back-1", node_port)
        node = stack.enter_context(mezd_start(tmp_path / "node", node_port))
        assert seconds_until_listed(env, "back-1", BACK_WITHIN) is not None
        waits = []
        for restart in range(1, RESTARTS + 1):
            auth.stop()
            time.sleep(DOWN)
            with mezctl_start(data, listen=f"127.0.0.1:{port}") as auth:
                waited = seconds_until_listed(env, "back-1", BACK_WITHIN)
                assert waited is not None, (
                    f"restart {restart}: node not listed within {BACK_WITHIN:.0f}s "
                    f"(earlier restarts: {waits})\n{node.log.read_text()[-3000:]}"
                )
                waits.append(round(waited, 1))
        print(f"seconds until listed after each restart: {waits}")
        assert node.proc.poll() is None
