"""Agentless: a stock OpenSSH sshd that trusts Mezite's user CA (`mezctl export --type
user-ca`) accepts a Mezite user certificate, and refuses one that a lock or a deletion
revoked once it reads Mezite's KRL (`mezctl export --type krl`, sshd's RevokedKeys)."""

from __future__ import annotations

import getpass
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.procs import AuthProcess, cli, cluster_pin, mez_env, mezctl_start
from tests.stock_sshd import HAVE_SSHD, stock_sshd

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not HAVE_SSHD, reason="OpenSSH server not installed"),
]
PASSWORD = "a long enough password"
LOGIN = getpass.getuser()


def user(auth: AuthProcess, name: str, tmp: Path) -> Path:
    """A user logged in with mez; returns their profile directory (key, certificate)."""
    add = cli("mezctl", "users", "add", name, "--roles", "access", "--logins", LOGIN,
              "--password-stdin", "--data-dir", str(auth.data_dir),
              stdin=PASSWORD + "\n")  # fmt: skip
    assert add.returncode == 0, add.stderr
    env = mez_env(tmp / name)
    done = cli("mez", "login", "--auth", auth.addr, "--user", name, "--password-stdin",
               "--ca-pin", cluster_pin(auth.data_dir), stdin=PASSWORD + "\n", env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return Path(env["MEZITE_HOME"]) / "e2e"


def ssh(profile: Path, port: int, login: str = LOGIN) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ssh", "-F", "/dev/null", "-i", str(profile / "key"),
         "-o", f"CertificateFile={profile / 'key-cert.pub'}", "-o", "IdentitiesOnly=yes",
         "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
         "-o", "UserKnownHostsFile=/dev/null", "-p", str(port), f"{login}@127.0.0.1",
         "id", "-un"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


def user_ca(auth: AuthProcess) -> str:
    ca = cli("mezctl", "export", "--type", "user-ca", "--data-dir", str(auth.data_dir))
    assert ca.returncode == 0 and ca.stdout.startswith("ssh-ed25519 "), ca.stderr
    return ca.stdout


def test_stock_sshd_accepts_a_mezite_certificate(tmp_path: Path) -> None:
    with mezctl_start(tmp_path / "data") as auth:
        alice = user(auth, "alice", tmp_path)
        ca = user_ca(auth)
    with stock_sshd(tmp_path / "sshd", ca) as port:
        done = ssh(alice, port)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == LOGIN
        # A login the certificate does not name is refused by sshd itself.
        assert ssh(alice, port, login="nobody").returncode == 255


def export_krl(auth: AuthProcess, out: Path) -> str:
    done = cli("mezctl", "export", "--type", "krl", "--out", str(out),
               "--data-dir", str(auth.data_dir))  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_stock_sshd_refuses_what_mezites_krl_revokes(tmp_path: Path) -> None:
    krl = tmp_path / "mezite.krl"
    with mezctl_start(tmp_path / "data") as auth:
        alice, bob, carol = (user(auth, name, tmp_path) for name in ("alice", "bob", "carol"))
        assert "revokes 0 certificate(s)" in export_krl(auth, krl)
        with stock_sshd(tmp_path / "sshd", user_ca(auth), revoked_keys=krl) as port:
            for profile in (alice, bob, carol):
                assert ssh(profile, port).returncode == 0
            locked = cli("mezctl", "lock", "add", "--user", "alice", "--data-dir",
                         str(auth.data_dir))  # fmt: skip
            assert locked.returncode == 0, locked.stderr
            assert cli("mezctl", "users", "rm", "carol",
                       "--data-dir", str(auth.data_dir)).returncode == 0  # fmt: skip
            assert ssh(alice, port).returncode == 0  # sshd knows nothing of it yet
            assert "revokes 2 certificate(s)" in export_krl(auth, krl)
            assert ssh(alice, port).returncode == 255
            assert ssh(carol, port).returncode == 255
            assert ssh(bob, port).returncode == 0
            listed = subprocess.run(["ssh-keygen", "-Q", "-l", "-f", str(krl)],
                                    capture_output=True, text=True, check=True).stdout  # fmt: skip
            assert "id: user=alice serial=" in listed and "id: user=carol serial=" in listed
            # Lifting the lock and exporting again lets alice back in.
            name = cli("mezctl", "lock", "ls", "--format", "json", "--data-dir",
                       str(auth.data_dir)).stdout  # fmt: skip
            (alices,) = [r["name"] for r in json.loads(name) if r["target"] == "user=alice"]
            assert cli("mezctl", "lock", "rm", alices,
                       "--data-dir", str(auth.data_dir)).returncode == 0  # fmt: skip
            assert "revokes 1 certificate(s)" in export_krl(auth, krl)
            assert ssh(alice, port).returncode == 0
            assert ssh(carol, port).returncode == 255


def test_exporting_a_krl_refuses_a_terminal_and_a_bad_path(tmp_path: Path) -> None:
    with mezctl_start(tmp_path / "data") as auth:
        bad = cli("mezctl", "export", "--type", "krl", "--out", str(tmp_path / "no" / "dir.krl"),
                  "--data-dir", str(auth.data_dir))  # fmt: skip
        assert bad.returncode != 0 and "cannot write" in bad.stderr
        assert "Traceback" not in bad.stderr
        other = cli("mezctl", "export", "--type", "user-ca", "--out", str(tmp_path / "x"),
                    "--data-dir", str(auth.data_dir))  # fmt: skip
        assert other.returncode != 0 and "--out is for --type krl" in other.stderr
        piped = subprocess.run(
            [str(Path(sys.executable).parent / "mezctl"), "export", "--type", "krl",
             "--data-dir", str(auth.data_dir)], capture_output=True, check=False,
        )  # fmt: skip
        assert piped.returncode == 0 and piped.stdout.startswith(b"SSHKRL\n\0")
