"""SSH through the proxy: `mez login --proxy`, `mez ssh`, OpenSSH `ssh -J`, RBAC at the
hop, and no open relay."""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
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


@dataclass
class Hop:
    auth: AuthProcess
    env: dict[str, str]
    home: Path


def _add_user(auth: AuthProcess, name: str, roles: str) -> None:
    done = cli(
        "mezctl",
        "users",
        "add",
        name,
        "--roles",
        roles,
        "--logins",
        LOGIN,
        "--password-stdin",
        "--data-dir",
        str(auth.data_dir),
        stdin=PASSWORD + "\n",
    )
    assert done.returncode == 0, done.stderr


def _login(auth: AuthProcess, name: str, tmp: Path) -> dict[str, str]:
    env = mez_env(tmp / name)
    done = cli(
        "mez",
        "login",
        "--proxy",
        auth.web_addr,
        "--user",
        name,
        "--password-stdin",
        "--ca-pin",
        cluster_pin(auth.data_dir),
        stdin=PASSWORD + "\n",
        env=env,
    )
    assert done.returncode == 0, done.stderr
    return env


@pytest.fixture(scope="module")
def hop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hop]:
    tmp = tmp_path_factory.mktemp("hop")
    with mezctl_start(tmp / "data") as auth:
        port = free_port()
        join_node(auth, tmp / "node", "web-1", port, labels="env=prod")
        with mezd_start(tmp / "node", port):
            _add_user(auth, "alice", "access")
            role = tmp / "dev.yaml"
            role.write_text(
                "kind: role\nmetadata:\n  name: dev-only\nspec:\n  allow:\n"
                "    logins: ['{{internal.logins}}']\n    node_labels:\n      env: dev\n"
            )
            assert (
                cli(
                    "mezctl", "create", "-f", str(role), "--data-dir", str(auth.data_dir)
                ).returncode
                == 0
            )
            _add_user(auth, "dana", "dev-only")
            env = _login(auth, "alice", tmp)
            deadline = time.monotonic() + 10
            while "web-1" not in cli("mez", "ls", env=env).stdout:
                assert time.monotonic() < deadline
                time.sleep(0.2)
            yield Hop(auth, env, Path(env["MEZITE_HOME"]) / "e2e")


def test_mez_ssh_goes_through_the_proxy(hop: Hop) -> None:
    done = cli("mez", "ssh", "web-1", "id", "-un", stdin="", env=hop.env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == LOGIN
    assert "ProxyJump mezite-proxy.e2e" in (hop.home / "ssh_config").read_text()
    assert cli("mez", "ssh", "web-1", "exit 9", stdin="", env=hop.env).returncode == 9


# What `mez ssh NAME` through a proxy must not load: the command-line framework (it
# reads ssh's own arguments) and any client for an RPC (the proxy resolves the name).
NOT_ON_THE_SSH_PATH = ("typer", "click", "grpc", "google.protobuf", "http.client", "cryptography",
                       "proto.client", "proto.web_client", "keyring", "logging")  # fmt: skip


def _imported(stderr: str) -> set[str]:
    return {
        line.rsplit("|", 1)[-1].strip()
        for line in stderr.splitlines()
        if line.startswith("import time:")
    }


def test_mez_ssh_by_name_needs_no_rpc_and_no_framework(hop: Hop) -> None:
    listed = json.loads(cli("mez", "ls", "--format", "json", env=hop.env).stdout)
    (node_id,) = [n["id"] for n in listed if n["name"] == "web-1"]
    for target in ("web-1", "web-1.e2e", node_id):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", str(BIN / "mez"), "ssh", target, "id", "-un"],
            input="", capture_output=True, text=True, timeout=60, check=False,
            env={**os.environ, **hop.env},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.strip() == LOGIN
        imported = _imported(done.stderr)
        assert "cli.mez_ssh" in imported, done.stderr[-2000:]
        loaded = sorted(
            m for m in imported if any(m == n or m.startswith(n + ".") for n in NOT_ON_THE_SSH_PATH)
        )
        assert loaded == [], target
    # A name that is not one, and the errors of the fast path: one line, no traceback.
    for bad in ("web 1", "web-1;id", ".web-1", "w" * 254):
        done = cli("mez", "ssh", bad, "true", stdin="", env=hop.env)
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith("error: invalid node name"), done.stderr
        assert "Traceback" not in done.stderr
    done = cli("mez", "ssh", "-F", "x", "web-1", env=hop.env)
    assert done.returncode == 2 and done.stderr.startswith("error: "), done.stderr


def test_openssh_jump_through_the_proxy(hop: Hop) -> None:
    proxy = hop.auth.proxy_ssh_addr
    host, port = proxy.rsplit(":", 1)
    common = [
        "-i",
        str(hop.home / "key"),
        "-o",
        f"CertificateFile={hop.home / 'key-cert.pub'}",
        "-o",
        f"UserKnownHostsFile={hop.home / 'known_hosts'}",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
    ]
    jump = [
        "ssh",
        "-F",
        "/dev/null",
        *common,
        "-o",
        "HostKeyAlias=proxy",
        "-W",
        "%h:%p",
        "-p",
        port,
        f"{LOGIN}@{host}",
    ]
    done = subprocess.run(
        [
            "ssh",
            "-F",
            "/dev/null",
            *common,
            "-o",
            f"ProxyCommand={' '.join(jump)}",
            f"{LOGIN}@web-1",
            "id",
            "-un",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == LOGIN


def _jump_to(
    hop: Hop, target: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    home = Path((env or hop.env)["MEZITE_HOME"]) / "e2e"
    return subprocess.run(
        ["ssh", "-F", str(home / "ssh_config"), "-W", target, "mezite-proxy.e2e"],
        input="",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_unregistered_destinations_are_refused_and_never_dialed(hop: Hop) -> None:
    seen: list[object] = []
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(3)
    port = listener.getsockname()[1]

    def accept() -> None:
        with contextlib.suppress(OSError):
            seen.append(listener.accept())

    watcher = threading.Thread(target=accept)
    watcher.start()
    try:
        done = _jump_to(hop, f"127.0.0.1:{port}")
        assert done.returncode == 255
        assert "no node named '127.0.0.1' that you can reach" in done.stderr
        watcher.join(5)
        assert seen == []
    finally:
        listener.close()
    assert _jump_to(hop, "example.com:22").returncode == 255


def test_the_proxy_checks_roles_before_dialing(hop: Hop, tmp_path: Path) -> None:
    assert cli("mez", "ssh", "web-1", "true", stdin="", env=hop.env).returncode == 0
    env = _login(hop.auth, "dana", tmp_path)
    done = _jump_to(hop, "web-1:22", env=env)
    assert done.returncode == 255
    # The same answer as for a node that is not there: the hop tells dana no more
    # names than `mez ls` shows her.
    absent = _jump_to(hop, "web-9:22", env=env)
    assert absent.returncode == 255
    assert done.stderr.replace("web-1", "NAME") == absent.stderr.replace("web-9", "NAME")
    assert "no node named 'web-1' that you can reach" in done.stderr
    through_mez = cli("mez", "ssh", "web-1", "true", stdin="", env=env)
    assert through_mez.returncode == 255
    assert "no node named 'web-1' that you can reach" in through_mez.stderr
    deadline = time.monotonic() + 10  # the proxy forwards its audit events in batches
    while True:
        events = cli(
            "mezctl",
            "audit",
            "events",
            "--type",
            "proxy.route",
            "--format",
            "json",
            "--data-dir",
            str(hop.auth.data_dir),
        )
        routes = json.loads(events.stdout)
        if {"dana", "alice"} <= {r["user"] for r in routes} or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert any(r["user"] == "dana" and not r["success"] for r in routes), routes
    assert any(
        r["user"] == "alice" and r["success"] and r["fields"]["node"] == "web-1" for r in routes
    )
