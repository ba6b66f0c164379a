"""Starts that cannot work end in one line that names the file or address and the way out,
a non-zero exit, and nothing changed on disk: never a traceback, never "a bug in ...".

Each case is a real `mezctl start` or `mezd start` process against a broken data dir (a
file where a directory belongs, a damaged SQLite file, a truncated or incomplete node
identity) or an address it cannot listen on."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.procs import BIN, cli, free_port, join_node, mezctl_start

pytestmark = pytest.mark.e2e

LISTEN = ["--listen", "127.0.0.1:0", "--web-listen", "127.0.0.1:0",
          "--proxy-ssh-listen", "127.0.0.1:0"]  # fmt: skip


def snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` with its content's hash and mode: what "unchanged" means."""
    if root.is_file():
        return {root.name: hashlib.sha256(root.read_bytes()).hexdigest()}
    found = {}
    for path in sorted(root.rglob("*")):
        mode = oct(path.lstat().st_mode)
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
        found[str(path.relative_to(root))] = f"{mode} {digest}"
    return found


def assert_one_clear_line(stderr: str, *named: str) -> None:
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, stderr
    assert "Traceback" not in stderr and "a bug in" not in stderr, stderr
    for name in named:
        assert name in errors[0], errors[0]
    assert any(line.startswith("hint: ") for line in stderr.splitlines()), stderr


def test_a_data_dir_that_is_a_file(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.write_text("not a directory\n")
    before = snapshot(data)
    done = cli("mezctl", "start", "--data-dir", str(data), *LISTEN)
    assert done.returncode != 0
    assert_one_clear_line(done.stderr, str(data), "not a directory")
    assert snapshot(data) == before


NOT_SQLITE = b"garbage, not SQLite\n"
BAD_HEADER = b"SQLite format 3\x00" + b"\xff" * 84  # the magic, then a nonsense header


@pytest.mark.parametrize("content", [NOT_SQLITE, BAD_HEADER], ids=["not-sqlite", "bad-header"])
def test_a_damaged_backend_file(tmp_path: Path, content: bytes) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    store = data / "backend.sqlite"
    store.write_bytes(content)
    store.chmod(0o600)
    before = snapshot(data)
    done = cli("mezctl", "start", "--data-dir", str(data), *LISTEN)
    assert done.returncode != 0
    assert_one_clear_line(done.stderr, str(store))
    assert snapshot(data) == before


def test_a_busy_auth_port(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        listen = [*LISTEN]
        listen[1] = f"127.0.0.1:{port}"
        done = cli("mezctl", "start", "--data-dir", str(tmp_path / "data"), *listen)
    assert done.returncode != 0
    assert_one_clear_line(done.stderr, f"127.0.0.1:{port}", "in use")
    assert not (tmp_path / "data" / "auth.json").exists()


def read_only(directory: Path, *command: str) -> subprocess.CompletedProcess[str]:
    """``command`` with ``directory`` bind-mounted read-only over itself, in a mount
    namespace of its own (as root; otherwise in a user namespace as well)."""
    script = 'mount --bind "$0" "$0" && mount -o remount,ro,bind "$0" "$0" && exec "$@"'
    unshare = ["unshare", "--mount"] + ([] if os.geteuid() == 0 else ["--map-root-user"])
    return subprocess.run(
        [*unshare, "sh", "-c", script, str(directory), *command],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_a_data_dir_on_a_read_only_file_system(tmp_path: Path, joined: Path) -> None:
    """The usual way: a disk the kernel remounted read-only after errors, under a data
    dir that worked yesterday. Said by name, for auth and for a node, before anything
    else fails with SQLite's "unable to open database file"."""
    data = tmp_path / "auth"
    with mezctl_start(data):
        pass
    node = tmp_path / "node"
    shutil.copytree(joined, node)
    before = snapshot(tmp_path)
    for command in (
        [str(BIN / "mezctl"), "start", "--data-dir", str(data), *LISTEN],
        [str(BIN / "mezd"), "start", "--data-dir", str(node), "--listen", "127.0.0.1:0"],
    ):
        done = read_only(tmp_path, *command)
        assert done.returncode != 0
        assert_one_clear_line(done.stderr, str(command[3]), "read-only file system")
    assert snapshot(tmp_path) == before


def test_a_listen_address_that_does_not_resolve(tmp_path: Path) -> None:
    listen = [*LISTEN]
    listen[1] = "no-such-host.invalid:0"
    done = cli("mezctl", "start", "--data-dir", str(tmp_path / "data"), *listen)
    assert done.returncode != 0
    assert_one_clear_line(done.stderr, "no-such-host.invalid")
    assert "hint: the host name does not resolve" in done.stderr
    assert not (tmp_path / "data" / "auth.json").exists()


@pytest.fixture(scope="module")
def joined(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A node's data dir from a real join; each test breaks a copy of it."""
    root = tmp_path_factory.mktemp("bad-mezd")
    with mezctl_start(root / "auth") as auth:
        join_node(auth, root / "node", "n1", free_port())
        yield root / "node"


def _truncate_identity(node: Path) -> None:
    identity = node / "identity.json"
    identity.write_text(identity.read_text()[:50])


def _drop_tls_key(node: Path) -> None:
    (node / "tls.key").unlink()


def _strip_fields(node: Path) -> None:
    (node / "identity.json").write_text('{"name": "n1"}')


@pytest.mark.parametrize(
    ("damage", "named"),
    [(_truncate_identity, "identity.json"), (_drop_tls_key, "tls.key"),
     (_strip_fields, "identity.json")],
    ids=["truncated", "missing-key", "fields-missing"],
)  # fmt: skip
def test_a_damaged_node_identity(
    joined: Path, tmp_path: Path, damage: Callable[[Path], None], named: str
) -> None:
    node = tmp_path / "node"
    shutil.copytree(joined, node)
    damage(node)
    before = snapshot(node)
    done = cli("mezd", "start", "--data-dir", str(node), "--listen", "127.0.0.1:0", timeout=30)
    assert done.returncode != 0
    assert_one_clear_line(done.stderr, str(node), named)
    assert snapshot(node) == before


def test_a_busy_node_port(joined: Path, tmp_path: Path) -> None:
    node = tmp_path / "node"
    shutil.copytree(joined, node)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        before = snapshot(node)
        done = cli("mezd", "start", "--data-dir", str(node), "--listen", f"127.0.0.1:{port}",
                   timeout=30)  # fmt: skip
    assert done.returncode != 0
    assert_one_clear_line(done.stderr, f"127.0.0.1:{port}", "in use")
    assert snapshot(node) == before


@pytest.mark.parametrize(
    ("setting", "named"),
    [("Builtin", "auto, builtin, none or an absolute path"),
     ("/nonexistent/sftp-server", "not an executable file")],
    ids=["unknown-word", "missing-program"],
)  # fmt: skip
def test_a_bad_sftp_server_setting(joined: Path, tmp_path: Path, setting: str, named: str) -> None:
    node = tmp_path / "node"
    shutil.copytree(joined, node)
    before = snapshot(node)
    done = cli("mezd", "start", "--data-dir", str(node), "--listen", "127.0.0.1:0",
               "--sftp-server", setting, timeout=30)  # fmt: skip
    assert done.returncode != 0
    assert_one_clear_line(done.stderr, "--sftp-server", setting, named)
    assert snapshot(node) == before
