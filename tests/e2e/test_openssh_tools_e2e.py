"""Programs that run "an ssh" run `mez ssh`: rsync -e, GIT_SSH_COMMAND, scp -S, Ansible's
ssh_executable; plain OpenSSH after `mez config`; a node is reachable as soon as it is
listed. All through the proxy, as a Mezite user (alice) whose login is another name."""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.procs import (
    BIN,
    AuthProcess,
    cli,
    cluster_pin,
    free_port,
    join_node,
    mez_env,
    mezctl_start,
    mezd_start,
)

pytestmark = pytest.mark.e2e
PASSWORD = "a long enough password"
LOGIN = getpass.getuser()
MEZ_SSH = f"{BIN / 'mez'} ssh"


@dataclass
class Cluster:
    auth: AuthProcess
    env: dict[str, str]  # the whole environment for programs that run mez
    tmp: Path

    def mez(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return cli("mez", *args, stdin=stdin, env=self.env)

    def run(self, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, input="", capture_output=True, text=True, timeout=120,
                              check=False, env={**self.env, **env})  # fmt: skip


def _listed(cluster: Cluster, name: str) -> None:
    deadline = time.monotonic() + 15
    while name not in cluster.mez("ls").stdout:
        assert time.monotonic() < deadline, f"{name} never listed"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("tools")
    with mezctl_start(tmp / "data") as auth:
        added = cli("mezctl", "users", "add", "alice", "--roles", "access", "--logins", LOGIN,
                    "--password-stdin", "--data-dir", str(auth.data_dir),
                    stdin=PASSWORD + "\n")  # fmt: skip
        assert added.returncode == 0, added.stderr
        port = free_port()
        join_node(auth, tmp / "node", "web-1", port)
        with mezd_start(tmp / "node", port):
            env = {**os.environ, **mez_env(tmp / "alice")}
            login = cli("mez", "login", "--proxy", auth.web_addr, "--user", "alice",
                        "--password-stdin", "--ca-pin", cluster_pin(auth.data_dir),
                        stdin=PASSWORD + "\n", env=env)  # fmt: skip
            assert login.returncode == 0, login.stderr
            running = Cluster(auth, env, tmp)
            _listed(running, "web-1")
            yield running


@pytest.mark.skipif(shutil.which("rsync") is None, reason="rsync not installed")
def test_rsync_over_mez_ssh(cluster: Cluster, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "data.bin").write_bytes(bytes(range(256)) * 512)
    (src / "note.txt").write_text("hello\n")
    remote = tmp_path / "remote"  # the node runs on this machine
    up = cluster.run("rsync", "-a", "-e", MEZ_SSH, f"{src}/", f"web-1:{remote}/")
    assert up.returncode == 0, up.stderr
    assert (remote / "sub" / "data.bin").read_bytes() == bytes(range(256)) * 512
    back = tmp_path / "back"
    # LOGIN@: rsync passes `-l LOGIN`, which `mez ssh` once took for the node's name.
    down = cluster.run("rsync", "-a", "-e", MEZ_SSH, f"{LOGIN}@web-1:{remote}/", f"{back}/")
    assert down.returncode == 0, down.stderr
    assert (back / "note.txt").read_text() == "hello\n"


def test_git_clone_and_push_over_mez_ssh(cluster: Cluster, tmp_path: Path) -> None:
    bare = tmp_path / "repo.git"
    assert cluster.run("git", "init", "--bare", "-q", str(bare)).returncode == 0
    git_env = {"GIT_SSH_COMMAND": MEZ_SSH, "GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@x",
               "GIT_COMMITTER_NAME": "a", "GIT_COMMITTER_EMAIL": "a@x"}  # fmt: skip
    work = tmp_path / "work"
    # An ssh:// URL with a port: git probes with `-G`, then passes -p and SendEnv.
    clone = cluster.run("git", "clone", "-q", f"ssh://{LOGIN}@web-1:2222{bare}", str(work),
                        **git_env)  # fmt: skip
    assert clone.returncode == 0, clone.stderr
    (work / "f.txt").write_text("pushed\n")
    for step in (["add", "f.txt"], ["commit", "-qm", "over mez"], ["push", "-q", "origin", "HEAD"]):
        done = cluster.run("git", "-C", str(work), *step, **git_env)
        assert done.returncode == 0, done.stderr
    shown = cluster.run("git", "--git-dir", str(bare), "show", "HEAD:f.txt")
    assert shown.stdout == "pushed\n", shown.stderr
    again = cluster.run("git", "clone", "-q", f"web-1:{bare}", str(tmp_path / "again"), **git_env)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "again" / "f.txt").read_text() == "pushed\n"


def test_scp_with_mez_ssh_as_its_program(cluster: Cluster, tmp_path: Path) -> None:
    wrapper = tmp_path / "mez-ssh"
    wrapper.write_text(f'#!/bin/sh\nexec {MEZ_SSH} "$@"\n')
    wrapper.chmod(0o755)
    src = tmp_path / "a.txt"
    src.write_text("via scp -S\n")
    for mode in ([], ["-O"]):  # the SFTP protocol (-s ... sftp), and legacy scp
        dst = tmp_path / f"copied{len(mode)}.txt"
        done = cluster.run("scp", *mode, "-S", str(wrapper), str(src), f"web-1:{dst}")
        assert done.returncode == 0, done.stderr
        assert dst.read_text() == "via scp -S\n"


@pytest.mark.skipif(shutil.which("ansible", path=str(BIN)) is None, reason="needs ansible-core")
def test_ansible_ad_hoc_with_mez_ssh(cluster: Cluster, tmp_path: Path) -> None:
    # ansible_ssh_executable names one program, so a two-line wrapper runs `mez ssh`.
    wrapper = tmp_path / "mez-ssh"
    wrapper.write_text(f'#!/bin/sh\nexec {MEZ_SSH} "$@"\n')
    wrapper.chmod(0o755)
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(f"web-1 ansible_ssh_executable={wrapper} ansible_python_interpreter="
                         "/usr/bin/python3\n")  # fmt: skip
    ansible_env = {"ANSIBLE_HOST_KEY_CHECKING": "False", "ANSIBLE_PIPELINING": "True",
                   "ANSIBLE_LOCAL_TEMP": str(tmp_path / "at"), "ANSIBLE_HOME": str(tmp_path),
                   "ANSIBLE_SSH_CONTROL_PATH_DIR": str(tmp_path / "cp")}  # fmt: skip
    ansible = str(BIN / "ansible")
    raw = cluster.run(ansible, "all", "-i", str(inventory), "-m", "raw", "-a", "id -un",
                      **ansible_env)  # fmt: skip
    assert raw.returncode == 0, raw.stdout + raw.stderr
    assert f"web-1 | CHANGED | rc=0 >>\n{LOGIN}" in raw.stdout
    command = cluster.run(ansible, "all", "-i", str(inventory), "-m", "command", "-a", "uname -s",
                          "-u", LOGIN, **ansible_env)  # fmt: skip
    assert command.returncode == 0, command.stdout + command.stderr
    assert "Linux" in command.stdout


def test_plain_ssh_after_mez_config_logs_in_as_the_login(cluster: Cluster, tmp_path: Path) -> None:
    block = cluster.mez("config")
    assert block.returncode == 0, block.stderr
    assert "User alice" not in block.stdout  # the Mezite user is no login on the node
    config = tmp_path / "ssh_config"
    config.write_text(block.stdout)
    done = cluster.run("ssh", "-F", str(config), "-o", "BatchMode=yes", "web-1.e2e", "id", "-un")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == LOGIN


def test_refused_options_are_one_line_and_connect_nowhere(cluster: Cluster) -> None:
    for args, message in (
        (["-F", "/dev/null"], "-F is not supported"),
        (["-J", "elsewhere"], "-J is not supported"),
        (["-o", "ProxyCommand=nc 127.0.0.1 22"], "-o ProxyCommand is not supported"),
    ):
        done = cluster.mez("ssh", *args, "web-1", "true")
        assert done.returncode == 2
        assert done.stderr.startswith(f"error: mez ssh: {message}"), done.stderr
        assert "Traceback" not in done.stderr and done.stdout == ""


def test_pinned_options_cannot_be_weakened(cluster: Cluster) -> None:
    # Host keys stay checked against the cluster's CA: a known_hosts of /dev/null and
    # StrictHostKeyChecking=no given by the caller are ignored, not obeyed.
    done = cluster.mez("ssh", "-v", "-o", "StrictHostKeyChecking=no", "-o",
                       "UserKnownHostsFile=/dev/null", "-p", "2222", "web-1", "true")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "mez ssh: ignoring -o StrictHostKeyChecking" in done.stderr
    home = Path(cluster.env["MEZITE_HOME"]) / "e2e"
    assert "is known and matches the ED25519-CERT host certificate" in done.stderr
    assert f"Found CA key in {home / 'known_hosts'}" in done.stderr
    assert "Permanently added" not in done.stderr


def test_a_node_is_reachable_as_soon_as_it_is_listed(cluster: Cluster) -> None:
    # `mez ssh` looks the node up and then goes through the proxy at once: the first try
    # that finds it listed must get through (the proxy refreshes its own table only
    # every few seconds, so without asking auth on a miss this try is refused).
    port = free_port()
    join_node(cluster.auth, cluster.tmp / "node2", "web-2", port)
    with mezd_start(cluster.tmp / "node2", port):
        deadline = time.monotonic() + 15
        while (done := cluster.mez("ssh", "web-2", "echo", "at once")).returncode == 5:
            assert "no node named 'web-2'" in done.stderr
            assert time.monotonic() < deadline, "web-2 never listed"
        assert done.returncode == 0, done.stderr
        assert done.stdout == "at once\n"
