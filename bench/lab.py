"""The SSH side of the suite: the Mezite node reached three ways (`mez ssh`, OpenSSH's
ssh with the options `mez ssh` uses, and that plus pinned algorithms), and two stock
sshd servers trusting the same Mezite user CA (a target and a jump host for -J)."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from bench.cluster import BIN, Cluster, Proc
from bench.openssh import HostCA, StockSSHD, client_config, pinned_args


@dataclass
class Lab:
    cluster: Cluster
    dir: Path
    target: StockSSHD | None = None
    jump: StockSSHD | None = None
    config: Path | None = None
    node_id: str = ""
    errors: list[str] = field(default_factory=list)

    def start_sshd(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        host_ca = HostCA(self.dir / "host-ca")
        user_ca = self.cluster.export_user_ca()
        self.target = StockSSHD(self.dir / "sshd-target", user_ca, host_ca)
        self.jump = StockSSHD(self.dir / "sshd-jump", user_ca, host_ca)
        self.target.start()
        self.jump.start()
        profile = self.cluster.profile_dir()
        self.config = client_config(
            self.dir / "ssh_config",
            identity=profile / "key",
            certificate=profile / "key-cert.pub",
            known_hosts=host_ca.known_hosts(self.dir / "known_hosts"),
        )

    def find_node(self) -> None:
        done = self.cluster.run("mez", "ls", "--format", "json", user=True)
        nodes = json.loads(done.stdout or "[]")
        self.node_id = next(n["id"] for n in nodes if n["name"] == self.cluster.node_name)

    # --- command lines --------------------------------------------------------------

    @property
    def login(self) -> str:
        return self.cluster.login

    def mez_ssh(self, *command: str, flags: tuple[str, ...] = ()) -> list[str]:
        return [str(BIN / "mez"), "ssh", *flags, self.cluster.node_name, *command]

    def node_ssh(
        self,
        *command: str,
        flags: tuple[str, ...] = (),
        profile: Path | None = None,
    ) -> list[str]:
        """OpenSSH's ssh to the Mezite node with the options `mez ssh` passes (see
        cli/mez_client.ssh_options) and the pinned algorithms; as the
        cluster's user, or the one logged in under ``profile``."""
        profile = profile or self.cluster.profile_dir()
        options = [
            "HostName=127.0.0.1",
            f"Port={self.cluster.node_port}",
            f"HostKeyAlias={self.node_id}",
            f"IdentityFile={profile / 'key'}",
            f"CertificateFile={profile / 'key-cert.pub'}",
            f"UserKnownHostsFile={profile / 'known_hosts'}",
            "GlobalKnownHostsFile=/dev/null",
            "StrictHostKeyChecking=yes",
            "IdentitiesOnly=yes",
            "BatchMode=yes",
        ]
        argv = ["ssh", "-F", "/dev/null"]
        for option in options:
            argv += ["-o", option]
        argv += pinned_args()
        return [*argv, *flags, "-l", self.login, self.cluster.node_name, *command]

    def sshd_ssh(self, *command: str, jump: bool = False, flags: tuple[str, ...] = ()) -> list[str]:
        assert self.target is not None and self.jump is not None and self.config is not None
        argv = ["ssh", "-F", str(self.config)]
        if jump:
            argv += ["-J", f"{self.login}@127.0.0.1:{self.jump.port}"]
        return [*argv, *flags, "-p", str(self.target.port), f"{self.login}@127.0.0.1", *command]

    def user_env(self) -> dict[str, str]:
        return self.cluster.user_env()

    def check(self, argv: list[str], timeout: float = 20) -> str:
        """'' when ``argv`` exits 0 within ``timeout``, else what went wrong."""
        try:
            done = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=timeout,
                env={**os.environ, **self.user_env()},
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            return f"hung for more than {timeout:.0f}s"
        if done.returncode != 0:
            return f"exit {done.returncode}: {done.stderr.strip()[-400:]}"
        return ""

    def procs(self) -> list[Proc]:
        return [s.proc for s in (self.target, self.jump) if s is not None and s.proc is not None]
