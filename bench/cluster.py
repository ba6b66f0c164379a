"""A real Mezite cluster in a temporary directory: `mezctl start` (auth), `mezd join` +
`mezd start` (a node), and a user logged in with `mez login` against a file keyring.

Everything listens on 127.0.0.1 only. Every process is started here, tracked by its
pid, and stopped by that pid."""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

BIN = Path(sys.executable).parent
# A benchmark's agents all dial from 127.0.0.1, where a real fleet comes from N addresses:
# auth's per-address cap on unfinished handshakes (64 by default) would throttle them as
# one, and refuse everything else from that address meanwhile (B4's ListNodes client).
FLEET_ENV = {"MEZITE_AUTH_MAX_HANDSHAKES_PER_ADDRESS": "100000"}
PASSWORD = "bench password, long enough"  # noqa: S105 - a throwaway test user
# Unauthenticated calls (Ping, AuthenticateLocal) are rate limited per address; the
# benchmarks send thousands from 127.0.0.1, so the limit is raised to its maximum.
AUTH_ENV = {"MEZITE_AUTH_RATE_LIMIT_PER_MINUTE": "100000"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(
    port: int, proc: subprocess.Popen[bytes] | None, timeout: float = 30, poll: float = 0.05
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening")
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")
        time.sleep(poll)


def proxy_flags() -> list[str]:
    """Where `mezctl start` also runs the proxy (newer trees), keep its listeners on
    loopback too: by default they bind 0.0.0.0:3080 and 0.0.0.0:3023."""
    done = subprocess.run(
        [str(BIN / "mezctl"), "start", "--help"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )
    flags = []
    if "--web-listen" in done.stdout:
        flags += ["--web-listen", "127.0.0.1:0"]
    if "--proxy-ssh-listen" in done.stdout:
        flags += ["--proxy-ssh-listen", "127.0.0.1:0"]
    return flags


@dataclass
class Proc:
    """A process we started, with its log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 15) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def spawn(name: str, argv: list[str], log: Path, env: dict[str, str] | None = None) -> Proc:
    out = log.open("wb")
    try:
        popen = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
        )
    finally:
        out.close()
    return Proc(name, popen, log)


@dataclass
class Cluster:
    """One auth process, optionally one node, and one logged-in user."""

    root: Path
    name: str = "bench"
    login: str = field(default_factory=getpass.getuser)
    auth: Proc | None = None
    node: Proc | None = None
    node_name: str = "node1"
    node_port: int = 0
    node_error: str = ""
    user: str = "alice"
    addr: str = ""
    pin: str = ""
    _proxy_flags: list[str] | None = field(default=None, repr=False)

    @property
    def data_dir(self) -> Path:
        return self.root / "auth-data"

    def user_env(self) -> dict[str, str]:
        """The user's own ~/.mezite and a file keyring (headless: no Secret Service)."""
        return {
            "MEZITE_HOME": str(self.root / "mezite-home"),
            "PYTHON_KEYRING_BACKEND": "keyrings.alt.file.PlaintextKeyring",
            "XDG_DATA_HOME": str(self.root / "xdg-data"),
        }

    def run(
        self,
        prog: str,
        *args: str,
        stdin: str | None = None,
        user: bool = False,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, **(self.user_env() if user else {})}
        return subprocess.run(
            [str(BIN / prog), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=env,
        )

    def must(self, prog: str, *args: str, **kw: object) -> str:
        done = self.run(prog, *args, **kw)  # type: ignore[arg-type]
        if done.returncode != 0:
            raise RuntimeError(f"{prog} {' '.join(args[:3])} failed: {done.stderr.strip()}")
        return done.stdout

    def start_auth(self, extra_env: dict[str, str] | None = None, listen: str = "") -> None:
        """``mezctl start``, up and answering; ``listen`` fixes the address (default
        127.0.0.1:0) so that a restarted auth comes back where its clients dial."""
        self.launch_auth(extra_env, listen)
        self.await_auth()
        status = json.loads(
            self.must("mezctl", "status", "--data-dir", str(self.data_dir), "--format", "json")
        )
        self.pin = str(status["ca_pin"])

    def launch_auth(
        self, extra_env: dict[str, str] | None = None, listen: str = "", log: str = "auth.log"
    ) -> None:
        """Spawn ``mezctl start`` without waiting for it (B8 times its listener)."""
        self.root.mkdir(parents=True, exist_ok=True)
        if self._proxy_flags is None:
            self._proxy_flags = proxy_flags()  # asked once: `mezctl start --help` is slow
        argv = [
            str(BIN / "mezctl"),
            "start",
            "--data-dir",
            str(self.data_dir),
            "--listen",
            listen or "127.0.0.1:0",
            "--cluster-name",
            self.name,
            *self._proxy_flags,
        ]
        (self.data_dir / "auth.json").unlink(missing_ok=True)
        self.auth = spawn("auth", argv, self.root / log, {**AUTH_ENV, **(extra_env or {})})

    def await_auth(self, timeout: float = 60) -> None:
        """Wait for the runtime file a started auth writes, and take its address."""
        assert self.auth is not None
        runtime = self.data_dir / "auth.json"
        deadline = time.monotonic() + timeout
        while not runtime.exists():
            if not self.auth.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"mezctl start failed:\n{self.auth.tail()}")
            time.sleep(0.05)
        self.addr = str(json.loads(runtime.read_text())["addr"])

    def add_user(self, name: str | None = None) -> None:
        self.must(
            "mezctl",
            "users",
            "add",
            name or self.user,
            "--roles",
            "access",
            "--logins",
            self.login,
            "--password-stdin",
            "--data-dir",
            str(self.data_dir),
            stdin=PASSWORD + "\n",
        )

    def mez_login(self) -> None:
        self.must(
            "mez",
            "login",
            "--auth",
            self.addr,
            "--user",
            self.user,
            "--password-stdin",
            "--ca-pin",
            self.pin,
            stdin=PASSWORD + "\n",
            user=True,
        )

    def proxy_env(self) -> dict[str, str]:
        """A second user home, logged in through the proxy (`mez login --proxy`)."""
        return {**self.user_env(), "MEZITE_HOME": str(self.root / "mezite-home-proxy")}

    def mez_login_proxy(self) -> bool:
        """Log in through the proxy; False when this cluster runs no proxy."""
        runtime = self.data_dir / "proxy.json"
        if not runtime.exists():
            return False
        web = str(json.loads(runtime.read_text())["web_addr"])
        env = {**os.environ, **self.proxy_env()}
        done = subprocess.run(
            [str(BIN / "mez"), "login", "--proxy", web, "--user", self.user,
             "--password-stdin", "--ca-pin", self.pin],
            input=PASSWORD + "\n", capture_output=True, text=True, timeout=60, check=False,
            env=env,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"mez login --proxy failed: {done.stderr.strip()}")
        return True

    def profile_dir(self) -> Path:
        return Path(self.user_env()["MEZITE_HOME"]) / self.name

    def export_user_ca(self) -> str:
        return self.must("mezctl", "export", "--type", "user-ca", "--data-dir", str(self.data_dir))

    def node_token(self) -> str:
        out = self.must(
            "mezctl", "tokens", "add", "--type", "node", "--data-dir", str(self.data_dir)
        )
        match = re.search(r"--token (\S+)", out)
        if match is None:
            raise RuntimeError(f"no token in: {out}")
        return match.group(1)

    def start_node(self) -> bool:
        """Join and start one mezd; False (with ``node_error``) when that fails."""
        node_dir = self.root / "node-data"
        self.node_port = free_port()
        try:
            if not (node_dir / "identity.json").exists() and not node_dir.exists():
                self.must(
                    "mezd",
                    "join",
                    "--token",
                    self.node_token(),
                    "--auth-server",
                    self.addr,
                    "--ca-pin",
                    self.pin,
                    "--name",
                    self.node_name,
                    "--advertise-addr",
                    f"127.0.0.1:{self.node_port}",
                    "--data-dir",
                    str(node_dir),
                )
            argv = [
                str(BIN / "mezd"),
                "start",
                "--data-dir",
                str(node_dir),
                "--listen",
                f"127.0.0.1:{self.node_port}",
            ]
            self.node = spawn("mezd", argv, self.root / "mezd.log")
            wait_port(self.node_port, self.node.popen)
            self._wait_listed()
        except (RuntimeError, subprocess.TimeoutExpired) as err:
            tail = self.node.tail() if self.node else ""
            self.node_error = f"{err}\n{tail}".strip()
            if self.node is not None:
                self.node.stop()
                self.node = None
            return False
        return True

    def _wait_listed(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = self.run("mez", "ls", "--format", "json", user=True)
            if done.returncode == 0 and any(
                n["name"] == self.node_name for n in json.loads(done.stdout or "[]")
            ):
                return
            time.sleep(0.2)
        raise RuntimeError("the node did not show up in `mez ls`")

    def procs(self) -> list[Proc]:
        return [p for p in (self.node, self.auth) if p is not None]

    def stop(self) -> None:
        stop_all(self.procs())
        self.node = self.auth = None


def stop_all(procs: list[Proc], timeout: float = 15) -> None:
    """SIGTERM to every process first, then wait for each (they shut down in parallel)."""
    for proc in procs:
        if proc.alive():
            with contextlib.suppress(OSError):
                proc.popen.send_signal(signal.SIGTERM)
    for proc in procs:
        proc.stop(timeout)
