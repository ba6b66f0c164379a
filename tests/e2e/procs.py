"""Real mezctl / mezd / mez processes for end-to-end tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent


def cli(
    prog: str,
    *args: str,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / prog), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **(env or {})},
    )


@dataclass
class AuthProcess:
    proc: subprocess.Popen[str]
    data_dir: Path
    log: Path

    @property
    def addr(self) -> str:
        return str(json.loads((self.data_dir / "auth.json").read_text())["addr"])

    @property
    def web_addr(self) -> str:
        return str(json.loads((self.data_dir / "proxy.json").read_text())["web_addr"])

    @property
    def proxy_ssh_addr(self) -> str:
        return str(json.loads((self.data_dir / "proxy.json").read_text())["ssh_addr"])

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


@contextmanager
def mezctl_start(
    data_dir: Path,
    *extra: str,
    cluster: str = "e2e",
    roles: str = "auth,proxy",
    env: dict[str, str] | None = None,
    listen: str = "127.0.0.1:0",
) -> Iterator[AuthProcess]:
    """`mezctl start` with auth on ``listen`` (default 127.0.0.1 port 0). With roles
    "proxy", ``extra`` carries what the lone proxy needs (--auth-server, and --token and
    --ca-pin at its first start)."""
    log = data_dir.parent / f"{data_dir.name}-{roles.replace(',', '-')}.log"
    ready = [data_dir / f"{role}.json" for role in roles.split(",")]
    for left in ready:  # by a process that was SIGKILLed: not this one's readiness
        left.unlink(missing_ok=True)
    flags = ["--web-listen", "127.0.0.1:0", "--proxy-ssh-listen", "127.0.0.1:0"]
    if "auth" in roles:
        flags += ["--listen", listen, "--cluster-name", cluster]
    with log.open("w") as out:
        proc = subprocess.Popen(
            [BIN / "mezctl", "start", "--data-dir", data_dir, "--roles", roles, *flags, *extra],
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **(env or {})},
        )
    running = AuthProcess(proc, data_dir, log)
    try:
        deadline = time.monotonic() + 30
        while not all(f.exists() for f in ready):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"mezctl start failed:\n{log.read_text()}")
            time.sleep(0.05)
        yield running
    finally:
        running.stop()


def mez_env(tmp: Path) -> dict[str, str]:
    """A user's environment: their own ~/.mezite and a file keyring (the OS keyring is
    the one thing tests fake, through keyring's own PYTHON_KEYRING_BACKEND)."""
    return {
        "MEZITE_HOME": str(tmp / "mezite-home"),
        "PYTHON_KEYRING_BACKEND": "keyrings.alt.file.PlaintextKeyring",
        "XDG_DATA_HOME": str(tmp / "xdg-data"),
    }


def cluster_pin(data_dir: Path) -> str:
    done = cli("mezctl", "status", "--data-dir", str(data_dir), "--format", "json")
    assert done.returncode == 0, done.stderr
    return str(json.loads(done.stdout)["ca_pin"])


@dataclass
class NodeProcess:
    proc: subprocess.Popen[str]
    data_dir: Path
    log: Path
    port: int

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def join_node(
    auth: AuthProcess,
    data_dir: Path,
    name: str,
    port: int,
    labels: str = "",
    advertise: list[str] | None = None,
) -> None:
    """`mezd join` with a fresh token, advertising ``advertise`` (default: 127.0.0.1 and
    ``port``; ``[]``: no --advertise-addr at all)."""
    claims = [f"127.0.0.1:{port}"] if advertise is None else advertise
    made = cli(
        "mezctl",
        "tokens",
        "add",
        "--type",
        "node",
        "--format",
        "json",
        *(["--labels", labels] if labels else []),
        "--data-dir",
        str(auth.data_dir),
    )
    assert made.returncode == 0, made.stderr
    line = json.loads(made.stdout)["join"].split()
    assert line[:2] == ["mezd", "join"]
    done = cli(
        "mezd",
        "join",
        *line[2:],
        "--name",
        name,
        *(["--advertise-addr", ",".join(claims)] if claims else []),
        "--data-dir",
        str(data_dir),
    )
    assert done.returncode == 0, done.stderr


def _limit_files(limit: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))


@contextmanager
def mezd_start(
    data_dir: Path,
    port: int,
    *extra: str,
    listen_host: str = "127.0.0.1",
    open_files: int | None = None,
) -> Iterator[NodeProcess]:
    """`mezd start`; with ``open_files``, under that descriptor limit, soft and hard (so
    raising its soft limit cannot help it)."""
    log = data_dir.parent / f"{data_dir.name}-node.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                str(BIN / "mezd"),
                "start",
                "--data-dir",
                str(data_dir),
                "--listen",
                f"{listen_host}:{port}",
                "--heartbeat-interval",
                "0.5",
                *extra,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=None if open_files is None else lambda: _limit_files(open_files),
        )
    node = NodeProcess(proc, data_dir, log, port)
    try:
        deadline = time.monotonic() + 30
        while "serving SSH" not in log.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"mezd start failed:\n{log.read_text()}")
            time.sleep(0.05)
        yield node
    finally:
        node.stop()
