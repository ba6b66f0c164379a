"""Locks and deletions with real processes: mezctl start (auth and proxy), mezd, mez and
OpenSSH. A lock ends a live `mez ssh` within seconds, directly and through the proxy;
`users rm` makes the user's certificate useless on the node at once; `nodes rm` makes
the node refuse every login."""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.procs import (
    AuthProcess,
    NodeProcess,
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
LOGIN = getpass.getuser()
CLUSTER = "e2e"
ENDED_WITHIN = 5.0


@dataclass
class Cluster:
    auth: AuthProcess
    node: NodeProcess
    tmp: Path

    def mezctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return cli("mezctl", *args, "--data-dir", str(self.auth.data_dir))

    def user(self, name: str, *, proxy: bool) -> dict[str, str]:
        """A new user, logged in with `mez login` (via the proxy or straight to auth)."""
        added = cli("mezctl", "users", "add", name, "--roles", "access", "--logins", LOGIN,
                    "--password-stdin", "--data-dir", str(self.auth.data_dir),
                    stdin=PASSWORD + "\n")  # fmt: skip
        assert added.returncode == 0, added.stderr
        env = mez_env(self.tmp / name)
        where = ["--proxy", self.auth.web_addr] if proxy else ["--auth", self.auth.addr]
        done = cli("mez", "login", *where, "--user", name, "--password-stdin", "--ca-pin",
                   cluster_pin(self.auth.data_dir), stdin=PASSWORD + "\n", env=env)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return env


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("locks")
    with mezctl_start(tmp / "data", cluster=CLUSTER) as auth:
        port = free_port()
        join_node(auth, tmp / "node", "web-1", port)
        with mezd_start(tmp / "node", port) as node:
            yield Cluster(auth, node, tmp)


def until(check: Callable[[], bool], what: str, within: float = 10.0) -> float:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < within, what
        time.sleep(0.1)
    return time.monotonic() - started


def mez_ssh(env: dict[str, str], *command: str) -> subprocess.CompletedProcess[str]:
    return cli("mez", "ssh", "web-1", *command, env=env)


def open_session(env: dict[str, str]) -> subprocess.Popen[str]:
    from tests.e2e.procs import BIN

    proc = subprocess.Popen(
        [str(BIN / "mez"), "ssh", "web-1", "echo up; exec sleep 60"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **env},
    )  # fmt: skip
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "up"
    return proc


def lock_user(cluster: Cluster, name: str, reason: str) -> str:
    done = cluster.mezctl("lock", "add", "--user", name, "--reason", reason, "--format", "json")
    assert done.returncode == 0, done.stderr
    return str(json.loads(done.stdout)["name"])


@pytest.mark.parametrize("proxy", [False, True], ids=["direct", "through-the-proxy"])
def test_a_lock_ends_a_live_session_refuses_new_ones_and_lifts(
    cluster: Cluster, proxy: bool
) -> None:
    name = "pat" if proxy else "dan"
    env = cluster.user(name, proxy=proxy)
    assert mez_ssh(env, "true").returncode == 0
    session = open_session(env)
    started = time.monotonic()
    lock = lock_user(cluster, name, "laptop stolen")
    try:
        _, said = session.communicate(timeout=ENDED_WITHIN)
    except subprocess.TimeoutExpired:
        session.kill()
        session.communicate()
        raise
    assert time.monotonic() - started < ENDED_WITHIN
    assert session.returncode == 255
    assert "session ended: locked by" in said and "laptop stolen" in said, said
    refused = mez_ssh(env, "true")
    assert refused.returncode != 0 and "laptop stolen" in refused.stderr, refused.stderr
    listed = json.loads(cluster.mezctl("lock", "ls", "--format", "json").stdout)
    assert [row["name"] for row in listed if row["target"] == f"user={name}"] == [lock]
    assert cluster.mezctl("lock", "rm", lock).returncode == 0
    until(lambda: mez_ssh(env, "true").returncode == 0, "access to come back")
    events = json.loads(cluster.mezctl("audit", "events", "--type", "session.terminated",
                                       "--user", name, "--format", "json").stdout)  # fmt: skip
    assert events and "laptop stolen" in events[0]["fields"]["reason"]


def _raw_ssh(cluster: Cluster, env: dict[str, str], port: int) -> subprocess.CompletedProcess[str]:
    """Plain OpenSSH with the certificate mez holds, straight at the node (no mez: it
    would ask auth first, and this is about what the node alone decides)."""
    profile = Path(env["MEZITE_HOME"]) / CLUSTER
    return subprocess.run(
        ["ssh", "-F", "/dev/null", "-i", str(profile / "key"),
         "-o", f"CertificateFile={profile / 'key-cert.pub'}", "-o", "IdentitiesOnly=yes",
         "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
         "-o", "UserKnownHostsFile=/dev/null", "-p", str(port), f"{LOGIN}@127.0.0.1", "true"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


def test_a_deleted_users_certificate_is_refused_by_the_node_at_once(cluster: Cluster) -> None:
    env = cluster.user("carol", proxy=False)
    assert _raw_ssh(cluster, env, cluster.node.port).returncode == 0
    live = open_session(env)  # opened before the deletion: it ends too
    started = time.monotonic()
    assert cluster.mezctl("users", "rm", "carol").returncode == 0
    _, said = live.communicate(timeout=ENDED_WITHIN)
    assert time.monotonic() - started < ENDED_WITHIN
    assert live.returncode == 255 and "session ended" in said and "deleted" in said, said
    took = until(lambda: _raw_ssh(cluster, env, cluster.node.port).returncode == 255,
                 "the node to refuse carol's certificate", within=ENDED_WITHIN)  # fmt: skip
    assert took < ENDED_WITHIN
    refused = _raw_ssh(cluster, env, cluster.node.port)
    assert "access denied: locked by system" in refused.stderr and "deleted" in refused.stderr
    # A new carol is a new incarnation: her own certificate works.
    fresh = cluster.user("carol", proxy=False)
    assert _raw_ssh(cluster, fresh, cluster.node.port).returncode == 0


def test_a_removed_node_stops_accepting_logins(cluster: Cluster) -> None:
    port = free_port()
    join_node(cluster.auth, cluster.tmp / "node2", "web-2", port)
    env = cluster.user("erin", proxy=False)
    with mezd_start(cluster.tmp / "node2", port) as node:
        until(lambda: _raw_ssh(cluster, env, port).returncode == 0, "web-2 to serve")
        assert cluster.mezctl("nodes", "rm", "web-2").returncode == 0
        until(lambda: _raw_ssh(cluster, env, port).returncode == 255,
              "web-2 to refuse logins", within=ENDED_WITHIN)  # fmt: skip
        refused = _raw_ssh(cluster, env, port)
        assert "removed from the cluster" in refused.stderr or "locked" in refused.stderr
        log = node.log.read_text()
        # Its own lock arrived on its lock stream, or its reconnect was refused first.
        assert "locked: locked by system" in log or "refusing every login here" in log, log[-2000:]
    # web-1 is another node: it still serves.
    assert _raw_ssh(cluster, env, cluster.node.port).returncode == 0
