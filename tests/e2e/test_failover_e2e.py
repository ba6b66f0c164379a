"""Failover between two auth+proxy servers on one PostgreSQL: a real `mezd` given both
auth addresses and a real `mez` logged in through both proxies keep working when either
server is killed with SIGKILL, and come back to the first when the second dies."""

from __future__ import annotations

import contextlib
import getpass
import json
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.procs import (
    AuthProcess,
    cli,
    cluster_pin,
    free_port,
    mez_env,
    mezctl_start,
    mezd_start,
)
from tests.pg import PostgresServer

pytestmark = pytest.mark.e2e
PASSWORD = "a long enough password"
LOGIN = getpass.getuser()
FAILOVER_WAIT = 5.0 + 5.0  # the target, and slack for a loaded test machine


class Server:
    """One `mezctl start` with fixed ports, so a restart comes back where it was."""

    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self.data_dir = data_dir
        self.env = env
        self.auth, self.web, self.ssh = (f"127.0.0.1:{free_port()}" for _ in range(3))
        self._stack = contextlib.ExitStack()
        self.proc: AuthProcess | None = None

    def start(self) -> None:
        flags = ("--listen", self.auth, "--web-listen", self.web, "--proxy-ssh-listen", self.ssh)
        self._stack = contextlib.ExitStack()
        self.proc = self._stack.enter_context(mezctl_start(self.data_dir, *flags, env=self.env))

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.stop(signal.SIGKILL)
        self._stack.close()


def _until(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + FAILOVER_WAIT
    while not check():
        assert time.monotonic() < deadline, f"not within {FAILOVER_WAIT}s: {what}"
        time.sleep(0.2)


def _served(env: dict[str, str]) -> None:
    """Everything a user needs, through whichever server is alive."""
    _until("mez ls lists the node", lambda: "web-1" in cli("mez", "ls", env=env).stdout)
    _until(
        "mez ssh works",
        lambda: cli("mez", "ssh", "web-1", "true", stdin="", env=env).returncode == 0,
    )


def _online_on(server: Server) -> bool:
    """The node's presence as the server itself lists it (its heartbeat landed there)."""
    listed = cli("mezctl", "nodes", "ls", "--format", "json", "--data-dir", str(server.data_dir))
    return any(n["name"] == "web-1" and n["online"] for n in json.loads(listed.stdout or "[]"))


def _log_in(env: dict[str, str], proxies: str, pin: str) -> None:
    done = cli(
        "mez", "login", "--proxy", proxies, "--user", "alice", "--password-stdin",
        "--ca-pin", pin, stdin=PASSWORD + "\n", env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


@pytest.fixture
def servers(postgres: PostgresServer, tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    env = {"MEZITE_BACKEND_TYPE": "postgres", "MEZITE_BACKEND_DSN": postgres.fresh_dsn()}
    a, b = Server(tmp_path / "a", env), Server(tmp_path / "b", env)
    try:
        a.start()
        b.start()
        yield a, b
    finally:
        for server in (a, b):
            with contextlib.suppress(Exception):
                server._stack.close()


def test_kill_either_server_and_everything_is_served_by_the_other(
    servers: tuple[Server, Server], tmp_path: Path
) -> None:
    a, b = servers
    pin = cluster_pin(a.data_dir)
    added = cli(
        "mezctl", "users", "add", "alice", "--roles", "access", "--logins", LOGIN,
        "--password-stdin", "--data-dir", str(a.data_dir), stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    made = cli("mezctl", "tokens", "add", "--type", "node", "--format", "json",
               "--data-dir", str(a.data_dir))  # fmt: skip
    token = json.loads(made.stdout)["token"]
    port = free_port()
    joined = cli(
        "mezd", "join", "--token", token, "--auth-server", a.auth, "--auth-server", b.auth,
        "--ca-pin", pin, "--name", "web-1", "--advertise-addr", f"127.0.0.1:{port}",
        "--data-dir", str(tmp_path / "node"),
    )  # fmt: skip
    assert joined.returncode == 0, joined.stderr
    env = mez_env(tmp_path / "user")
    proxies = f"{a.web},{b.web}"
    made = cli("mezctl", "tokens", "add", "--type", "proxy", "--format", "json",
               "--data-dir", str(a.data_dir))  # fmt: skip
    proxy_token = json.loads(made.stdout)["token"]
    lone_flags = ("--token", proxy_token, "--ca-pin", pin, "--auth-server", f"{a.auth},{b.auth}")
    lone_user = mez_env(tmp_path / "lone-user")
    with (
        mezd_start(tmp_path / "node", port),
        mezctl_start(tmp_path / "lone", *lone_flags, roles="proxy") as lone,
    ):
        _log_in(env, proxies, pin)
        _served(env)
        _log_in(lone_user, lone.web_addr, pin)  # a lone proxy given both auth servers
        _served(lone_user)

        a.kill()
        _served(env)
        _served(lone_user)
        _log_in(env, proxies, pin)  # a session and certificates from the live server
        # An admin names both servers, the dead one first, with the flag repeated.
        listed = cli("mezctl", "nodes", "ls", "--auth-server", a.auth, "--auth-server",
                     b.auth, "--format", "json", "--data-dir", str(a.data_dir))  # fmt: skip
        assert listed.returncode == 0, listed.stderr
        assert [n["name"] for n in json.loads(listed.stdout)] == ["web-1"]
        _until("the live server lists the node online", lambda: _online_on(b))

        a.start()
        b.kill()
        _served(env)
        _served(lone_user)
        _log_in(env, proxies, pin)  # alice, made before both kills, is still there
        _until("the live server lists the node online", lambda: _online_on(a))


def test_ping_advertises_the_public_name_not_the_listener(tmp_path: Path) -> None:
    """A proxy listening on every interface behind the name users reach: its ping names
    that name (with the SSH port), never 0.0.0.0 or loopback."""
    from proto.web_client import ping

    port = free_port()
    env = {"MEZITE_PROXY_PUBLIC_ADDR": "proxies.example.test:443"}
    with mezctl_start(tmp_path / "d", "--proxy-ssh-listen", f"0.0.0.0:{port}", env=env) as s:
        doc = ping(s.web_addr)
    assert doc.proxy_ssh_addr == f"proxies.example.test:{port}"


def test_a_recording_uploaded_through_one_server_plays_through_the_other(
    servers: tuple[Server, Server], tmp_path: Path
) -> None:
    """Recordings' bytes live in PostgreSQL, not in one auth server's data dir: the node
    knows only A, the user and the admin ask B."""
    a, b = servers
    pin = cluster_pin(a.data_dir)
    added = cli(
        "mezctl", "users", "add", "alice", "--roles", "access", "--logins", LOGIN,
        "--password-stdin", "--data-dir", str(a.data_dir), stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    made = cli("mezctl", "tokens", "add", "--type", "node", "--format", "json",
               "--data-dir", str(a.data_dir))  # fmt: skip
    port = free_port()
    joined = cli("mezd", "join", "--token", json.loads(made.stdout)["token"], "--auth-server",
                 a.auth, "--ca-pin", pin, "--name", "web-1", "--advertise-addr",
                 f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "node"))  # fmt: skip
    assert joined.returncode == 0, joined.stderr
    env = mez_env(tmp_path / "user")
    with mezd_start(tmp_path / "node", port):
        _log_in(env, a.web, pin)
        _until("mez ls lists the node", lambda: "web-1" in cli("mez", "ls", env=env).stdout)
        ran = cli("mez", "ssh", "-tt", "web-1", "echo recorded-on-postgres", env=env)
        assert ran.returncode == 0, ran.stderr
        _log_in(env, b.web, pin)  # from now on through B alone

        def listed() -> list[dict[str, object]]:
            done = cli("mez", "recordings", "ls", "--format", "json", env=env)
            return list(json.loads(done.stdout or "[]"))

        _until("the recording is listed through B", lambda: bool(listed()))
        session_id = str(listed()[0]["session_id"])
        played = cli("mez", "play", session_id, "--speed", "100", env=env)
        assert "recorded-on-postgres" in played.stdout, played.stderr
        exported = cli("mezctl", "recordings", "export", session_id, "--data-dir",
                       str(b.data_dir))  # fmt: skip
        assert exported.returncode == 0 and "recorded-on-postgres" in exported.stdout
    assert not (b.data_dir / "recordings").exists()  # nothing on B's disk: in PostgreSQL
