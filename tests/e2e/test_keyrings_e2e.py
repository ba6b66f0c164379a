"""The session in real keyrings, as `mez login` keeps it and a tool that is not Mezite reads
it back: a Secret Service (gnome-keyring on a D-Bus session bus of the test's own, read with
`secret-tool`) and the Linux kernel's user keyring (`mez login --keyring kernel`, read
with `keyctl`). Neither falls back to a file when it cannot be used."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from proto.cluster_api import GrpcClusterAPI
from proto.errors import NotAuthenticated
from tests.e2e.procs import AuthProcess, cli, cluster_pin, mez_env, mezctl_start

pytestmark = pytest.mark.e2e
PASSWORD = "a long enough password"
SECRET_SERVICE = "keyring.backends.SecretService.Keyring"
LOGIN_COLLECTION = "/org/freedesktop/secrets/collection/login"


@dataclass
class Cluster(AuthProcess):
    cluster: str = ""


def _cluster(root: Path, name: str) -> Iterator[Cluster]:
    with mezctl_start(root / "data", cluster=name) as started:
        auth = Cluster(started.proc, started.data_dir, started.log, name)
        done = cli("mezctl", "users", "add", "alice", "--roles", "access", "--logins",
                   "alice", "--password-stdin", "--data-dir", str(auth.data_dir),
                   stdin=PASSWORD + "\n")  # fmt: skip
        assert done.returncode == 0, done.stderr
        yield auth


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from _cluster(tmp_path_factory.mktemp("kr"), "e2e")


@pytest.fixture(scope="module")
def kernel_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    # The kernel's user keyring is shared by every process of this uid: a cluster name of
    # this run's own keeps its key apart from anyone else's.
    yield from _cluster(tmp_path_factory.mktemp("kk"), f"kr-{secrets.token_hex(4)}")


@pytest.fixture
def secret_service(tmp_path: Path) -> Iterator[dict[str, str]]:
    """gnome-keyring's Secret Service, its login collection unlocked with a password, on
    a session bus that dbus-run-session starts for this test; yields the bus's env."""
    root = tmp_path / "gnome-keyring"
    dirs = {"HOME": root / "home", "XDG_DATA_HOME": root / "data",
            "XDG_RUNTIME_DIR": root / "run"}  # fmt: skip
    for path in dirs.values():
        path.mkdir(parents=True, mode=0o700)
    ready = root / "ready"
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update({k: str(v) for k, v in dirs.items()})
    env.update({"KEYRING_PASSWORD": "unlock-me", "READY": str(ready)})
    script = (
        'printf %s "$KEYRING_PASSWORD" | gnome-keyring-daemon --foreground --unlock '
        "--components=secrets & "
        'echo "$! $DBUS_SESSION_BUS_ADDRESS" > "$READY.tmp" && mv "$READY.tmp" "$READY"; wait'
    )
    log = (root / "daemon.log").open("w")
    proc = subprocess.Popen(["dbus-run-session", "--", "sh", "-c", script],
                            stdout=log, stderr=log, env=env)  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while not ready.exists():
            assert proc.poll() is None and time.monotonic() < deadline, (
                f"no session bus:\n{(root / 'daemon.log').read_text()}"
            )
            time.sleep(0.05)
        _pid, address = ready.read_text().split(maxsplit=1)
        bus = {"DBUS_SESSION_BUS_ADDRESS": address.strip()}
        # Until the daemon owns the name, D-Bus would activate another, locked, one.
        owner = ("org.freedesktop.DBus", "/org/freedesktop/DBus", "NameHasOwner",
                 "string:org.freedesktop.secrets")  # fmt: skip
        while b"true" not in _dbus_send(bus, *owner):
            assert time.monotonic() < deadline, (root / "daemon.log").read_text()
            time.sleep(0.05)
        yield bus
    finally:
        if ready.exists():
            os.kill(int(ready.read_text().split()[0]), signal.SIGTERM)
        proc.wait(timeout=15)
        log.close()


def _dbus_send(bus: dict[str, str], interface: str, path: str, method: str, *args: str) -> bytes:
    """A D-Bus call with dbus-send: nothing of Python's keyring stack in the way."""
    dest = (
        "org.freedesktop.DBus" if interface == "org.freedesktop.DBus" else "org.freedesktop.secrets"
    )
    done = subprocess.run(
        ["dbus-send", "--session", "--print-reply", f"--dest={dest}", path,
         f"{interface}.{method}", *args],
        capture_output=True, env={**os.environ, **bus}, timeout=10, check=False,
    )  # fmt: skip
    return done.stdout


def mez_login(auth: AuthProcess, env: dict[str, str], *extra: str):  # type: ignore[no-untyped-def]
    return cli("mez", "login", "--auth", auth.addr, "--user", "alice", "--password-stdin",
               "--ca-pin", cluster_pin(auth.data_dir), *extra, stdin=PASSWORD + "\n",
               env=env)  # fmt: skip


def whose_session(auth: AuthProcess, ca: bytes, session: str) -> str:
    """The user the server says ``session`` belongs to, asked with nothing but it."""
    api = GrpcClusterAPI(auth.addr, ca, session_id=session)
    try:
        return api.current_user().username
    finally:
        api.close()


def cluster_ca(home: Path) -> bytes:
    return (home / (home / "current").read_text().strip() / "ca.pem").read_bytes()


def assert_in_no_file(root: Path, secret: str) -> None:
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert secret.encode() not in path.read_bytes(), path


def assert_refused_cleanly(done: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert done.returncode == 3, (done.stdout, done.stderr)
    lines = done.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: ") and lines[1].startswith("hint: ")
    for needle in needles:
        assert needle in done.stderr, done.stderr


def assert_no_file_keyring(tmp_path: Path) -> None:
    """keyrings.alt's and keyring's file stores: none was made."""
    names = {p.name for p in tmp_path.rglob("*")}
    assert not names & {"keyring_pass.cfg", "crypted_pass.cfg", "python_keyring"}, names


def secret_tool(bus: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["secret-tool", *args], capture_output=True, text=True,
                          env={**os.environ, **bus}, timeout=10, check=False)  # fmt: skip


def test_the_session_lives_in_the_secret_service(
    cluster: AuthProcess, secret_service: dict[str, str], tmp_path: Path
) -> None:
    env = {**mez_env(tmp_path), **secret_service, "PYTHON_KEYRING_BACKEND": SECRET_SERVICE}
    done = mez_login(cluster, env)
    assert done.returncode == 0, done.stderr
    assert f"Keyring:     SecretService Keyring ({SECRET_SERVICE})" in done.stdout
    found = secret_tool(secret_service, "search", "--all", "service", "mezite")
    assert found.returncode == 0, found.stderr
    # secret-tool prints the label and secret to stdout, the attributes to stderr.
    lines = (found.stdout + found.stderr).splitlines()
    fields = dict(line.split(" = ", 1) for line in lines if " = " in line)
    assert fields["attribute.service"] == "mezite"
    assert fields["attribute.username"] == "e2e/alice"  # cluster/user
    assert found.stdout.count("[/") == 1  # one item
    session = secret_tool(secret_service, "lookup", "service", "mezite", "username", "e2e/alice")
    assert session.stdout == fields["secret"]
    ca = cluster_ca(Path(env["MEZITE_HOME"]))
    assert whose_session(cluster, ca, session.stdout) == "alice"
    # Not in plain text anywhere: ~/.mezite, the XDG dirs, gnome-keyring's own files.
    assert_in_no_file(tmp_path, session.stdout)
    assert_no_file_keyring(tmp_path)
    status = cli("mez", "status", env=env)
    assert status.returncode == 0 and "Keyring:     SecretService Keyring" in status.stdout
    out = cli("mez", "logout", env=env)
    assert out.returncode == 0, out.stderr
    gone = secret_tool(secret_service, "search", "--all", "service", "mezite")
    assert "attribute.username" not in gone.stdout + gone.stderr
    with pytest.raises(NotAuthenticated):
        whose_session(cluster, ca, session.stdout)


def test_a_locked_collection_is_refused_with_the_way_out(
    cluster: AuthProcess, secret_service: dict[str, str], tmp_path: Path
) -> None:
    locked = _dbus_send(secret_service, "org.freedesktop.Secret.Service",
                        "/org/freedesktop/secrets", "Lock",
                        f"array:objpath:{LOGIN_COLLECTION}")  # fmt: skip
    assert LOGIN_COLLECTION.encode() in locked
    env = {**mez_env(tmp_path), **secret_service, "PYTHON_KEYRING_BACKEND": SECRET_SERVICE}
    logouts = len(logout_events(cluster))
    done = mez_login(cluster, env)
    assert_refused_cleanly(done, "locked", "gnome-keyring-daemon --unlock", "--keyring kernel")
    # The session the server made is ended, not left live with no one holding it.
    assert len(logout_events(cluster)) == logouts + 1
    assert not (Path(env["MEZITE_HOME"]) / "e2e" / "key").exists()
    assert_no_file_keyring(tmp_path)
    assert secret_tool(secret_service, "search", "service", "mezite").stdout == ""


@pytest.mark.parametrize("bus", ["", "unix:path=/nonexistent/bus"])
def test_no_dbus_is_refused_with_the_way_out(
    cluster: AuthProcess, tmp_path: Path, bus: str
) -> None:
    env = {**mez_env(tmp_path), "PYTHON_KEYRING_BACKEND": SECRET_SERVICE}
    if bus:
        env["DBUS_SESSION_BUS_ADDRESS"] = bus
    done = mez_login(cluster, env)
    why = "cannot reach the Secret Service over D-Bus" if bus else "DBUS_SESSION_BUS_ADDRESS"
    assert_refused_cleanly(done, why, "dbus-run-session", "--keyring kernel")
    assert not (Path(env["MEZITE_HOME"]) / "e2e").exists()
    assert_no_file_keyring(tmp_path)


def logout_events(auth: AuthProcess) -> list[object]:
    done = cli("mezctl", "audit", "events", "--type", "session.logout", "--format", "json",
               "--data-dir", str(auth.data_dir))  # fmt: skip
    assert done.returncode == 0, done.stderr
    events = json.loads(done.stdout)
    assert isinstance(events, list)
    return events


def keyctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["keyctl", *args], capture_output=True, text=True, timeout=10,
                          check=False)  # fmt: skip


@pytest.mark.parametrize("chosen_by", ["flag", "env"])
def test_the_session_lives_in_the_kernel_keyring(
    kernel_cluster: Cluster, tmp_path: Path, chosen_by: str
) -> None:
    env = mez_env(tmp_path)
    del env["PYTHON_KEYRING_BACKEND"]  # not used: the kernel keyring is Mezite's own call
    home = Path(env["MEZITE_HOME"])
    key = f"mezite:{kernel_cluster.cluster}/alice"
    if chosen_by == "flag":
        done = mez_login(kernel_cluster, env, "--keyring", "kernel")
    else:
        done = mez_login(kernel_cluster, {**env, "MEZITE_KEYRING": "kernel"})
    try:
        assert done.returncode == 0, done.stderr
        assert f"Keyring:     kernel user keyring (keyutils), key user:{key}" in done.stdout
        found = keyctl("search", "@u", "user", key)
        assert found.returncode == 0, found.stderr
        serial = found.stdout.strip()
        # Its uid and the uid's processes may use it; group and others get nothing.
        described = keyctl("rdescribe", serial).stdout.strip()
        kind, uid, _gid, perm, description = described.split(";", 4)
        assert (kind, uid, description) == ("user", str(os.getuid()), key)
        assert int(perm, 16) & 0xFFFF == 0, perm
        session = keyctl("pipe", serial).stdout
        ca = cluster_ca(home)
        assert whose_session(kernel_cluster, ca, session) == "alice"
        profile = json.loads((home / kernel_cluster.cluster / "profile.json").read_text())
        assert profile["keyring"] == "kernel"
        assert_in_no_file(tmp_path, session)
        assert_no_file_keyring(tmp_path)
        # Later commands find it through the profile, whatever the environment says.
        status = cli("mez", "status", env={**env, "PYTHON_KEYRING_BACKEND": SECRET_SERVICE})
        assert status.returncode == 0, status.stderr
        assert "Keyring:     kernel user keyring" in status.stdout
        out = cli("mez", "logout", env=env)
        assert out.returncode == 0, out.stderr
        assert keyctl("search", "@u", "user", key).returncode != 0
        with pytest.raises(NotAuthenticated):
            whose_session(kernel_cluster, ca, session)
    finally:
        left = keyctl("search", "@u", "user", key)
        if left.returncode == 0:
            keyctl("unlink", left.stdout.strip(), "@u")


def test_an_unknown_keyring_is_refused(cluster: AuthProcess, tmp_path: Path) -> None:
    done = mez_login(cluster, mez_env(tmp_path), "--keyring", "plaintext")
    assert done.returncode == 2 and "unknown keyring 'plaintext'" in done.stderr
    assert "os, kernel" in done.stderr
