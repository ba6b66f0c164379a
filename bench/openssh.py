"""Stock OpenSSH on loopback: sshd servers that trust Mezite's user CA (as
`mezctl export --type user-ca` documents) and ssh client configs with pinned algorithms.

Each sshd gets a host certificate from a throwaway host CA, and the client trusts that
CA with an ``@cert-authority`` line, the same way `mez ssh` trusts Mezite's host CA."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from bench.cluster import Proc, free_port, spawn, wait_port
from bench.procstat import descendants, pss_kb, rss_kb

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
KEX = "curve25519-sha256"
CIPHER = "aes128-gcm@openssh.com"
HOSTKEY_ALGS = "ssh-ed25519-cert-v01@openssh.com,ssh-ed25519"
PINNED = {"KexAlgorithms": KEX, "Ciphers": CIPHER, "HostKeyAlgorithms": HOSTKEY_ALGS}


def pinned_args() -> list[str]:
    args: list[str] = []
    for key, value in PINNED.items():
        args += ["-o", f"{key}={value}"]
    return args


def keygen(path: Path, comment: str = "bench") -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True
    )


def ssh_version() -> str:
    done = subprocess.run(["ssh", "-V"], capture_output=True, text=True, check=False)
    return (done.stderr or done.stdout).strip()


@dataclass
class HostCA:
    dir: Path

    def __post_init__(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        if not (self.dir / "host_ca").exists():
            keygen(self.dir / "host_ca", "bench host CA")

    @property
    def public_line(self) -> str:
        return (self.dir / "host_ca.pub").read_text().strip()

    def certify(self, key: Path, principals: str) -> Path:
        subprocess.run(
            [
                "ssh-keygen",
                "-q",
                "-s",
                str(self.dir / "host_ca"),
                "-I",
                "bench-sshd",
                "-h",
                "-n",
                principals,
                "-V",
                "-5m:+1d",
                str(key) + ".pub",
            ],
            check=True,
        )
        return Path(str(key) + "-cert.pub")

    def known_hosts(self, path: Path) -> Path:
        path.write_text(f"@cert-authority * {self.public_line}\n")
        return path


@dataclass
class StockSSHD:
    """One `sshd -D` on 127.0.0.1 trusting ``user_ca_line``."""

    dir: Path
    user_ca_line: str
    host_ca: HostCA
    port: int = 0
    proc: Proc | None = field(default=None, repr=False)

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        key = self.dir / "host_key"
        if not key.exists():
            keygen(key, "bench sshd")
        cert = self.host_ca.certify(key, "127.0.0.1,localhost")
        (self.dir / "user_ca.pub").write_text(self.user_ca_line.strip() + "\n")
        (self.dir / "sshd_config").write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {key}\nHostCertificate {cert}\n"
            f"PidFile {self.dir / 'sshd.pid'}\nTrustedUserCAKeys {self.dir / 'user_ca.pub'}\n"
            "AuthorizedKeysFile none\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nUsePAM no\n"
            "StrictModes no\nMaxStartups 200\nMaxSessions 100\nPrintMotd no\nPrintLastLog no\n"
            "AllowTcpForwarding yes\nLogLevel ERROR\n"
        )
        Path("/run/sshd").mkdir(exist_ok=True)  # the privilege separation directory
        self.proc = spawn(
            f"sshd:{self.port}",
            [SSHD, "-D", "-e", "-f", str(self.dir / "sshd_config")],
            self.dir / "sshd.log",
        )
        wait_port(self.port, self.proc.popen, timeout=15)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def idle_rss_kb(self) -> int:
        return rss_kb(self.pid)

    def session_pss_kb(self) -> int:
        """PSS of every process sshd forked for connections (sessions)."""
        return sum(pss_kb(pid) for pid in descendants(self.pid))

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
            self.proc = None


def client_config(
    path: Path,
    *,
    identity: Path,
    certificate: Path,
    known_hosts: Path,
    extra: dict[str, str] | None = None,
) -> Path:
    """An ssh_config for the OpenSSH peers: pinned algorithms, the Mezite user key and
    certificate, the bench host CA. A file (not -o flags) so that `ssh -J` passes it to
    the jump connection too."""
    lines = ["Host *"]
    settings = {
        **PINNED,
        "IdentityFile": str(identity),
        "CertificateFile": str(certificate),
        "IdentitiesOnly": "yes",
        "UserKnownHostsFile": str(known_hosts),
        "GlobalKnownHostsFile": "/dev/null",
        "StrictHostKeyChecking": "yes",
        "BatchMode": "yes",
        "ControlMaster": "no",
        "ControlPath": "none",
        **(extra or {}),
    }
    lines += [f"  {key} {value}" for key, value in settings.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def negotiated(
    argv: list[str], timeout: float = 5.0, *, verbose_at: int = 1, env: dict[str, str] | None = None
) -> dict[str, str]:
    """The kex, cipher and host key algorithm an ssh command line negotiates (from -v,
    put in at ``verbose_at``: 2 for `mez ssh`, which passes it on to the ssh it execs; the
    key exchange is logged before the command runs, so a hang later is fine)."""
    try:
        done = subprocess.run(
            [*argv[:verbose_at], "-v", *argv[verbose_at:]],
            capture_output=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
        )
        err: bytes | str | None = done.stderr
    except subprocess.TimeoutExpired as exc:
        err = exc.stderr
    text = err.decode(errors="replace") if isinstance(err, bytes) else (err or "")
    out: dict[str, str] = {}
    for line in text.splitlines():
        if m := re.search(r"kex: algorithm: (\S+)", line):
            out.setdefault("kex", m.group(1))
        elif m := re.search(r"kex: host key algorithm: (\S+)", line):
            out.setdefault("hostkey", m.group(1))
        elif m := re.search(r"kex: server->client cipher: (\S+)", line):
            out.setdefault("cipher", m.group(1))
    return out
