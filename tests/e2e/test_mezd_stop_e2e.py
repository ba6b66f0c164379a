"""A real `mezd start` stopped with live OpenSSH sessions, and flooded with connections
at its descriptor limit.

SIGTERM and SIGINT end every session with a last line the user sees, mezd exits 0 with
no traceback, and the sessions' end events reach auth. A flood of connections that stay
open, under a hard descriptor limit of 256, costs a few log lines (not a traceback per
accept attempt), and once it ends an OpenSSH login works again."""

from __future__ import annotations

import getpass
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.procs import (
    BIN,
    AuthProcess,
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
SHUTDOWN_LINE = "mezd: node is shutting down"
FLOOD = 400  # connections held open: more than a 256-descriptor mezd can take
FLOOD_HELD = 3.0  # seconds: several of the listener's pauses


@dataclass
class Cluster:
    auth: AuthProcess
    tmp: Path
    env: dict[str, str]

    def node(self, name: str) -> tuple[Path, int]:
        port = free_port()
        join_node(self.auth, self.tmp / name, name, port)
        return self.tmp / name, port


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("mezd-stop")
    with mezctl_start(tmp / "data", cluster=CLUSTER) as auth:
        added = cli("mezctl", "users", "add", "sam", "--roles", "access", "--logins", LOGIN,
                    "--password-stdin", "--data-dir", str(auth.data_dir),
                    stdin=PASSWORD + "\n")  # fmt: skip
        assert added.returncode == 0, added.stderr
        env = mez_env(tmp / "sam")
        done = cli("mez", "login", "--auth", auth.addr, "--user", "sam", "--password-stdin",
                   "--ca-pin", cluster_pin(auth.data_dir), stdin=PASSWORD + "\n",
                   env=env)  # fmt: skip
        assert done.returncode == 0, done.stderr
        yield Cluster(auth, tmp, env)


def until(check: Callable[[], bool], what: str, within: float = 15.0) -> None:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < within, what
        time.sleep(0.2)


def mez_ssh(
    env: dict[str, str], node: str, *command: str, pty: bool = False
) -> subprocess.Popen[str]:
    """`mez ssh` (OpenSSH's ssh, exec'd) with pipes; a shell when given no command."""
    return subprocess.Popen(
        [str(BIN / "mez"), "ssh", *(["-tt"] if pty else []), node, *command],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **env},
    )  # fmt: skip


def wait_for_line(proc: subprocess.Popen[str], text: str) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        if text in line:
            return
    raise AssertionError(f"no {text!r} from the session")


def session_ends(cluster: Cluster, node: str) -> list[dict[str, object]]:
    done = cli("mezctl", "audit", "events", "--type", "session.end", "--user", "sam",
               "--format", "json", "--data-dir", str(cluster.auth.data_dir))  # fmt: skip
    assert done.returncode == 0, done.stderr
    events: list[dict[str, object]] = json.loads(done.stdout)
    return [e for e in events if isinstance(e["fields"], dict) and e["fields"]["node"] == node]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_ends_live_sessions_with_a_message_and_mezd_exits_0(
    cluster: Cluster, sig: signal.Signals
) -> None:
    name = f"stop-{sig.name.lower()}"
    data_dir, port = cluster.node(name)
    with mezd_start(data_dir, port) as node:
        shell = mez_ssh(cluster.env, name, pty=True)
        assert shell.stdin is not None
        shell.stdin.write("echo shell-up\n")
        shell.stdin.flush()
        wait_for_line(shell, "shell-up")
        command = mez_ssh(cluster.env, name, "echo exec-up; exec sleep 60")
        wait_for_line(command, "exec-up")
        node.proc.send_signal(sig)
        said = [proc.communicate(timeout=15)[1] for proc in (shell, command)]
        assert node.proc.wait(15) == 0
    log = node.log.read_text()
    for proc, stderr in zip((shell, command), said, strict=True):
        assert proc.returncode == 255, stderr
        assert SHUTDOWN_LINE in stderr, stderr
    assert "Traceback" not in log and "Error" not in log, log
    # Both ends were buffered on the node and flushed to auth before it exited.
    ends = session_ends(cluster, name)
    assert len(ends) == 2, ends
    assert {e["fields"]["kind"] for e in ends} == {"shell", "exec"}  # type: ignore[index]


def openssh_login(cluster: Cluster, port: int) -> subprocess.CompletedProcess[str]:
    """Plain OpenSSH with the certificate mez holds, straight at the node."""
    profile = Path(cluster.env["MEZITE_HOME"]) / CLUSTER
    return subprocess.run(
        ["ssh", "-F", "/dev/null", "-i", str(profile / "key"),
         "-o", f"CertificateFile={profile / 'key-cert.pub'}", "-o", "IdentitiesOnly=yes",
         "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "ConnectTimeout=5",
         "-o", "UserKnownHostsFile=/dev/null", "-p", str(port), f"{LOGIN}@127.0.0.1",
         "echo", "in"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


def test_a_connection_flood_at_the_descriptor_limit_costs_a_few_log_lines(
    cluster: Cluster,
) -> None:
    data_dir, port = cluster.node("flooded")
    with mezd_start(data_dir, port, open_files=256) as node:
        flood: list[socket.socket] = []
        try:
            for i in range(FLOOD):
                # From ten loopback addresses, each under the per-address cap on logins
                # in progress, so it is the descriptor limit that the flood reaches.
                source = (f"127.0.1.{i % 10 + 1}", 0)
                try:
                    flood.append(
                        socket.create_connection(
                            ("127.0.0.1", port), timeout=4, source_address=source
                        )
                    )
                except TimeoutError:
                    break  # the listen backlog is full: the node stopped accepting
            until(lambda: "not accepted" in node.log.read_text(), "the node to run out")
            time.sleep(FLOOD_HELD)  # held at the limit through several accept pauses
            assert node.proc.poll() is None
        finally:
            for sock in flood:
                sock.close()
        until(lambda: openssh_login(cluster, port).stdout == "in\n", "a login after the flood")
        assert node.stop() == 0
    log = node.log.read_text()
    assert "Traceback" not in log and "out of system resource" not in log, log[:4000]
    # The flood did reach the limit and said so once (asyncio's own accept loop logged
    # a traceback per attempt), then once that it was accepting again.
    said = [line for line in log.splitlines() if "proto.listener" in line]
    assert len(said) == 2, said
    assert "not accepted: Too many open files" in said[0]
    assert "accepting connections again" in said[1]
