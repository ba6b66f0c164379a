"""The whole journey with real processes: mezctl start, a token, mezd join and start,
mez login, mez ls / ssh / scp / config, real OpenSSH as the client."""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


@dataclass
class World:
    auth: AuthProcess
    node: NodeProcess
    env: dict[str, str]
    tmp: Path


PASSWORD = "a long enough password"
LOGIN = getpass.getuser()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("journey")
    with mezctl_start(tmp / "data") as auth:
        add = cli(
            "mezctl",
            "users",
            "add",
            "alice",
            "--roles",
            "access",
            "--logins",
            LOGIN,
            "--password-stdin",
            "--data-dir",
            str(auth.data_dir),
            stdin=PASSWORD + "\n",
        )
        assert add.returncode == 0, add.stderr
        port = free_port()
        join_node(auth, tmp / "node", "web-1", port, labels="env=prod")
        # The built-in SFTP server, as on a host without openssh-sftp-server.
        with mezd_start(tmp / "node", port, "--sftp-server", "builtin") as node:
            env = mez_env(tmp / "user")
            login = cli(
                "mez",
                "login",
                "--auth",
                auth.addr,
                "--user",
                "alice",
                "--password-stdin",
                "--ca-pin",
                cluster_pin(auth.data_dir),
                stdin=PASSWORD + "\n",
                env=env,
            )
            assert login.returncode == 0, login.stderr
            yield World(auth=auth, node=node, env=env, tmp=tmp)


def mez(world: World, *args: str, stdin: str | None = "") -> subprocess.CompletedProcess[str]:
    return cli("mez", *args, stdin=stdin, env=world.env)


def test_node_is_listed(world: World) -> None:
    listed = mez(world, "ls", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    (node,) = json.loads(listed.stdout)
    assert node["name"] == "web-1" and node["labels"] == {"env": "prod"}
    assert json.loads(mez(world, "ls", "env=dev", "--format", "json").stdout) == []


def test_mez_ssh_runs_as_the_login_and_keeps_exit_codes(world: World) -> None:
    done = mez(world, "ssh", "web-1", "--", "id", "-un")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == LOGIN
    assert mez(world, "ssh", "web-1", "exit 42").returncode == 42
    piped = mez(world, "ssh", "web-1", "cat", stdin="through the pipe\n")
    assert piped.stdout == "through the pipe\n"
    missing = mez(world, "ssh", "nope", "true")
    assert missing.returncode == 5 and "no node named" in missing.stderr


def test_label_selector_fans_out_with_prefixes(world: World) -> None:
    done = mez(world, "ssh", "env=prod", "echo", "hello")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[web-1] hello\n"


def test_openssh_client_with_the_mezite_certificate(world: World) -> None:
    """Plain OpenSSH ssh, a known_hosts @cert-authority line, no prompt."""
    home = Path(world.env["MEZITE_HOME"]) / "e2e"
    node = world.node
    done = subprocess.run(
        [
            "ssh",
            "-F",
            "/dev/null",
            "-i",
            str(home / "key"),
            "-o",
            f"CertificateFile={home / 'key-cert.pub'}",
            "-o",
            f"UserKnownHostsFile={home / 'known_hosts'}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-p",
            str(node.port),
            f"{LOGIN}@127.0.0.1",
            "id",
            "-un",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == LOGIN


def test_scp_round_trip(world: World, tmp_path: Path) -> None:
    payload = bytes(range(256)) * 4096
    src = tmp_path / "src.bin"
    src.write_bytes(payload)
    remote = f"/tmp/mezite-scp-{tmp_path.name}.bin"
    up = mez(world, "scp", str(src), f"web-1:{remote}")
    assert up.returncode == 0, up.stderr
    back = tmp_path / "back.bin"
    down = mez(world, "scp", f"web-1:{remote}", str(back))
    assert down.returncode == 0, down.stderr
    assert back.read_bytes() == payload
    mez(world, "ssh", "web-1", "rm", "-f", remote)


def _tree(root: Path) -> dict[str, tuple[bytes, int, int]]:
    """Each file under ``root``: its bytes, mode and whole-second mtime."""
    return {
        str(path.relative_to(root)): (
            path.read_bytes(),
            path.stat().st_mode & 0o777,
            int(path.stat().st_mtime),
        )
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


@pytest.mark.parametrize("legacy", [False, True], ids=["sftp", "legacy-O"])
def test_scp_recursive_and_preserving(world: World, tmp_path: Path, legacy: bool) -> None:
    """`mez scp -r -p` (and `-O`, the legacy protocol) copies a tree there and back
    with its modes and times, as OpenSSH's scp does."""
    src = tmp_path / "tree"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_bytes(b"a" * 70_000)
    (src / "sub" / "b.sh").write_bytes(b"#!/bin/sh\n")
    (src / "sub" / "b.sh").chmod(0o750)
    for number, path in enumerate(p for p in src.rglob("*") if p.is_file()):
        os.utime(path, (1_600_000_000 + number, 1_600_000_000 + number))
    remote = f"/tmp/mezite-scp-tree-{tmp_path.name}"
    flags = ["-rp", "-O"] if legacy else ["-r", "-p"]
    try:
        up = mez(world, "scp", *flags, str(src), f"web-1:{remote}")
        assert up.returncode == 0, up.stderr
        assert _tree(Path(remote)) == _tree(src)
        back = tmp_path / "back"
        down = mez(world, "scp", *flags, f"web-1:{remote}", str(back))
        assert down.returncode == 0, down.stderr
        assert _tree(back) == _tree(src)
    finally:
        mez(world, "ssh", "web-1", "rm", "-rf", remote)
    if legacy:  # scp -t and scp -f ran on the node; without -O no scp command runs there
        assert [e["fields"]["mode"] for e in _audited(world, "scp", f"scp -r -p -t {remote}")] == [
            "upload"
        ]
    assert "SFTP served by builtin" in world.node.log.read_text()


def test_ssh_config_block_works_with_plain_ssh(world: World, tmp_path: Path) -> None:
    block = mez(world, "config")
    assert block.returncode == 0, block.stderr
    config = tmp_path / "ssh_config"
    config.write_text(block.stdout)
    env = {**os.environ, **world.env}
    done = subprocess.run(
        # No LOGIN@: the block's User is the login, not the Mezite user (alice).
        ["ssh", "-F", str(config), "-o", "BatchMode=yes", "web-1.e2e", "id", "-un"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == LOGIN


def _audited(world: World, type: str, command: str) -> list[dict[str, Any]]:
    """The audit events of ``type`` for ``command``, once the node has forwarded them."""
    deadline = time.monotonic() + 15
    while True:
        events = cli(
            "mezctl",
            "audit",
            "events",
            "--format",
            "json",
            "--type",
            type,
            "--data-dir",
            str(world.auth.data_dir),
        )
        found = [e for e in json.loads(events.stdout) if e["fields"].get("command") == command]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_sessions_are_audited(world: World) -> None:
    found = _audited(world, "exec", "id -un")
    assert found and found[0]["fields"]["node"] == "web-1"


def _cert_serial(env: dict[str, str]) -> int:
    from cryptography.hazmat.primitives.serialization import (
        SSHCertificate,
        load_ssh_public_identity,
    )

    cert = load_ssh_public_identity(
        (Path(env["MEZITE_HOME"]) / "e2e" / "key-cert.pub").read_bytes()
    )
    assert isinstance(cert, SSHCertificate)
    return int(cert.serial)


def test_expired_certificates_are_reissued_silently_until_the_session_ends(
    world: World, tmp_path: Path
) -> None:
    auth = world.auth
    env = mez_env(tmp_path)
    login = cli(
        "mez",
        "login",
        "--auth",
        auth.addr,
        "--user",
        "alice",
        "--password-stdin",
        "--ca-pin",
        cluster_pin(auth.data_dir),
        "--ttl",
        "31s",
        stdin=PASSWORD + "\n",
        env=env,
    )
    assert login.returncode == 0, login.stderr
    first = _cert_serial(env)
    import time

    time.sleep(1.5)  # now within the refresh margin of a 31 s certificate
    done = cli("mez", "ssh", "web-1", "id", "-un", stdin="", env=env)
    assert done.returncode == 0 and done.stdout.strip() == LOGIN, done.stderr
    assert _cert_serial(env) != first
    # The session ends (an admin resets the user): no more silent reissue.
    reset = cli("mezctl", "users", "reset", "alice", "--data-dir", str(auth.data_dir))
    assert reset.returncode == 0, reset.stderr
    time.sleep(1.5)
    refused = cli("mez", "ssh", "web-1", "true", stdin="", env=env)
    assert refused.returncode == 3 and "mez login" in refused.stderr


def test_restart_without_a_token(world: World) -> None:
    node = world.node
    assert node.stop() == 0
    log = node.log.read_text()
    assert "shutting down" in log
    with mezd_start(node.data_dir, node.port):
        env = mez_env(world.tmp / "after-restart")
        auth = world.auth
        add = cli(
            "mezctl",
            "users",
            "add",
            "carol",
            "--roles",
            "access",
            "--logins",
            LOGIN,
            "--password-stdin",
            "--data-dir",
            str(auth.data_dir),
            stdin=PASSWORD + "\n",
        )
        assert add.returncode == 0, add.stderr
        login = cli(
            "mez",
            "login",
            "--auth",
            auth.addr,
            "--user",
            "carol",
            "--password-stdin",
            "--ca-pin",
            cluster_pin(auth.data_dir),
            stdin=PASSWORD + "\n",
            env=env,
        )
        assert login.returncode == 0, login.stderr
        done = cli("mez", "ssh", "web-1", "id", "-un", stdin="", env=env)
        assert done.returncode == 0 and done.stdout.strip() == LOGIN, done.stderr
        out = cli("mez", "logout", env=env)
        assert out.returncode == 0
        after = cli("mez", "ssh", "web-1", "true", stdin="", env=env)
        assert after.returncode == 3 and "mez login" in after.stderr
