"""`mez login`, `status`, `logout` and their refusals, as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.procs import AuthProcess, cli, cluster_pin, mez_env, mezctl_start

pytestmark = pytest.mark.e2e
PASSWORD = "a long enough password"
READ_SESSION = "import keyring; print(keyring.get_password('mezite', 'e2e/alice'))"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthProcess]:
    with mezctl_start(tmp_path_factory.mktemp("mez") / "data") as auth:
        done = cli("mezctl", "users", "add", "alice", "--roles", "access", "--logins",
                   "alice", "--password-stdin", "--data-dir", str(auth.data_dir),
                   stdin=PASSWORD + "\n")  # fmt: skip
        assert done.returncode == 0, done.stderr
        yield auth


def mez_login(auth: AuthProcess, env: dict[str, str], *extra: str, pin: str | None = None):  # type: ignore[no-untyped-def]
    pin_args = ["--ca-pin", pin] if pin else []
    return cli("mez", "login", "--auth", auth.addr, "--user", "alice", "--password-stdin",
               *pin_args, *extra, stdin=PASSWORD + "\n", env=env)  # fmt: skip


def test_login_status_logout(cluster: AuthProcess, tmp_path: Path) -> None:
    env = mez_env(tmp_path)
    done = mez_login(cluster, env, pin=cluster_pin(cluster.data_dir))
    assert done.returncode == 0, done.stderr
    assert "Logged in to e2e as alice" in done.stdout and "Logins:      alice" in done.stdout
    home = Path(env["MEZITE_HOME"])
    assert home.stat().st_mode & 0o777 == 0o700
    assert (home / "e2e" / "key").stat().st_mode & 0o777 == 0o600
    known_hosts = (home / "e2e" / "known_hosts").read_text()
    assert known_hosts.startswith("@cert-authority * ssh-ed25519 ")
    # The session is in the keyring, and nowhere under ~/.mezite.
    read = subprocess.run(
        [sys.executable, "-c", READ_SESSION],
        capture_output=True, text=True, env={**os.environ, **env}, check=True,
    )  # fmt: skip
    session = read.stdout.strip()
    assert len(session) >= 22 and session != "None"
    for path in home.rglob("*"):
        if path.is_file():
            assert session not in path.read_text(errors="ignore"), path
    status = cli("mez", "status", env=env)
    assert status.returncode == 0 and "Roles:       access" in status.stdout
    out = cli("mez", "logout", env=env)
    assert out.returncode == 0, out.stderr
    assert not (home / "e2e" / "key").exists()
    after = cli("mez", "status", env=env)
    assert after.returncode == 3 and "mez login" in after.stderr
    events = cli("mezctl", "audit", "events", "--type", "session.logout", "--format", "json",
                 "--data-dir", str(cluster.data_dir))  # fmt: skip
    assert '"alice"' in events.stdout


def test_first_contact_without_a_pin_is_refused_when_nobody_can_confirm(
    cluster: AuthProcess, tmp_path: Path
) -> None:
    env = mez_env(tmp_path)
    done = mez_login(cluster, env)
    assert done.returncode == 3
    assert "without a CA pin" in done.stderr and "--ca-pin" in done.stderr
    assert not (Path(env["MEZITE_HOME"]) / "e2e").exists()


def test_pin_mismatch(cluster: AuthProcess, tmp_path: Path) -> None:
    done = mez_login(cluster, mez_env(tmp_path), pin="sha256:" + "1" * 64)
    assert done.returncode == 10 and "does not match the CA pin" in done.stderr


def test_wrong_password(cluster: AuthProcess, tmp_path: Path) -> None:
    env = mez_env(tmp_path)
    pin = cluster_pin(cluster.data_dir)
    done = cli("mez", "login", "--auth", cluster.addr, "--user", "alice", "--password-stdin",
               "--ca-pin", pin, stdin="nope-nope-nope\n", env=env)  # fmt: skip
    assert done.returncode == 3 and "invalid username or password" in done.stderr


def test_missing_keyring_says_how_to_fix_it(cluster: AuthProcess, tmp_path: Path) -> None:
    env = {**mez_env(tmp_path), "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    done = mez_login(cluster, env, pin=cluster_pin(cluster.data_dir))
    assert done.returncode == 3
    assert "no OS keyring" in done.stderr and "PYTHON_KEYRING_BACKEND" in done.stderr
    assert "Traceback" not in done.stderr
    # Nothing fell back to a plain file.
    home = Path(env["MEZITE_HOME"])
    assert not (home / "e2e" / "key").exists()


@pytest.mark.parametrize(("target", "mode"), [("", 0o777), ("e2e/key", 0o644)])
def test_loose_permissions_are_refused(
    cluster: AuthProcess, tmp_path: Path, target: str, mode: int
) -> None:
    env = mez_env(tmp_path)
    assert mez_login(cluster, env, pin=cluster_pin(cluster.data_dir)).returncode == 0
    path = Path(env["MEZITE_HOME"]) / target
    os.chmod(path, mode)
    done = cli("mez", "status", env=env)
    assert done.returncode == 4 and "other users" in done.stderr


def test_mezctl_elsewhere_uses_the_mez_login(cluster: AuthProcess, tmp_path: Path) -> None:
    add = cli("mezctl", "users", "add", "root-op", "--roles", "admin", "--logins", "ops",
              "--password-stdin", "--data-dir", str(cluster.data_dir),
              stdin=PASSWORD + "\n")  # fmt: skip
    assert add.returncode == 0, add.stderr
    # Not the auth host: the default data dir (under this env's XDG_DATA_HOME) is absent.
    admin_env = mez_env(tmp_path / "op")
    pin = cluster_pin(cluster.data_dir)
    login = cli("mez", "login", "--auth", cluster.addr, "--user", "root-op", "--password-stdin",
                "--ca-pin", pin, stdin=PASSWORD + "\n", env=admin_env)  # fmt: skip
    assert login.returncode == 0, login.stderr
    listed = cli("mezctl", "users", "ls", "--format", "json", env=admin_env)
    assert listed.returncode == 0, listed.stderr
    assert "root-op" in listed.stdout
    user_env = mez_env(tmp_path / "alice")
    assert mez_login(cluster, user_env, pin=pin).returncode == 0
    refused = cli("mezctl", "users", "ls", env=user_env)
    assert refused.returncode == 4 and "admin role" in refused.stderr
    # A data dir that was named and is missing is a typo, not another host: no login used.
    typo = cli("mezctl", "users", "ls", "--data-dir", str(tmp_path / "typo"), env=admin_env)
    assert typo.returncode == 9 and typo.stderr.count("\n") == 1, typo.stderr
    assert "does not exist" in typo.stderr
