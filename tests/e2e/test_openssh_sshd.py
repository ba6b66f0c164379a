"""Agentless: a stock OpenSSH sshd that trusts Mezite's user CA (`mezctl export --type
user-ca`) accepts a Mezite user certificate."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.procs import cli, cluster_pin, mez_env, mezctl_start

pytestmark = pytest.mark.e2e
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
PASSWORD = "a long enough password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.skipif(not os.path.exists(SSHD), reason="OpenSSH server not installed")
def test_stock_sshd_accepts_a_mezite_certificate(tmp_path: Path) -> None:
    login = getpass.getuser()
    with mezctl_start(tmp_path / "data") as auth:
        add = cli("mezctl", "users", "add", "alice", "--roles", "access", "--logins", login,
                  "--password-stdin", "--data-dir", str(auth.data_dir),
                  stdin=PASSWORD + "\n")  # fmt: skip
        assert add.returncode == 0, add.stderr
        env = mez_env(tmp_path)
        pin = cluster_pin(auth.data_dir)
        done = cli("mez", "login", "--auth", auth.addr, "--user", "alice", "--password-stdin",
                   "--ca-pin", pin, stdin=PASSWORD + "\n", env=env)  # fmt: skip
        assert done.returncode == 0, done.stderr
        ca = cli("mezctl", "export", "--type", "user-ca", "--data-dir", str(auth.data_dir))
        assert ca.returncode == 0 and ca.stdout.startswith("ssh-ed25519 "), ca.stderr

    sshd_dir = tmp_path / "sshd"
    sshd_dir.mkdir()
    (sshd_dir / "user_ca.pub").write_text(ca.stdout)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                    str(sshd_dir / "host_key")], check=True)  # fmt: skip
    port = free_port()
    (sshd_dir / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {sshd_dir / 'host_key'}\n"
        f"PidFile {sshd_dir / 'sshd.pid'}\nTrustedUserCAKeys {sshd_dir / 'user_ca.pub'}\n"
        "AuthorizedKeysFile none\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation directory
    sshd = subprocess.Popen([SSHD, "-D", "-e", "-f", str(sshd_dir / "sshd_config")],
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline and sshd.poll() is None, "sshd did not start"
            time.sleep(0.05)
        profile = Path(env["MEZITE_HOME"]) / "e2e"
        ssh = subprocess.run(
            ["ssh", "-F", "/dev/null", "-i", str(profile / "key"),
             "-o", f"CertificateFile={profile / 'key-cert.pub'}", "-o", "IdentitiesOnly=yes",
             "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
             "-o", "UserKnownHostsFile=/dev/null", "-p", str(port), f"{login}@127.0.0.1",
             "id", "-un"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert ssh.returncode == 0, ssh.stderr
        assert ssh.stdout.strip() == login
        # A login the certificate does not name is refused by sshd itself.
        other = subprocess.run(
            ["ssh", "-F", "/dev/null", "-i", str(profile / "key"),
             "-o", f"CertificateFile={profile / 'key-cert.pub'}", "-o", "IdentitiesOnly=yes",
             "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
             "-o", "UserKnownHostsFile=/dev/null", "-p", str(port), "nobody@127.0.0.1", "true"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert other.returncode == 255
    finally:
        sshd.terminate()
        sshd.wait(10)
        assert sshd.stderr is not None
        sshd.stderr.close()
