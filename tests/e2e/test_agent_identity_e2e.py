"""An agent identity end to end: `mezctl agent-identities add`, the printed `mezd identity
start` line, real OpenSSH with the written ssh_config, renewals."""

from __future__ import annotations

import getpass
import json
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.e2e.procs import BIN, cli, free_port, join_node, mezctl_start, mezd_start

pytestmark = pytest.mark.e2e
LOGIN = getpass.getuser()


def test_agent_identity_journey(tmp_path: Path) -> None:
    with mezctl_start(tmp_path / "data") as auth:
        port = free_port()
        join_node(auth, tmp_path / "node", "web-1", port)
        with mezd_start(tmp_path / "node", port):
            made = cli(
                "mezctl",
                "agent-identities",
                "add",
                "ci",
                "--roles",
                "access",
                "--logins",
                LOGIN,
                "--ttl",
                "10m",
                "--dest",
                str(tmp_path / "out"),
                "--data-dir",
                str(auth.data_dir),
            )
            assert made.returncode == 0, made.stderr
            line = next(ln.strip() for ln in made.stdout.splitlines() if "mezd identity" in ln)
            argv = shlex.split(line)
            assert argv[:3] == ["mezd", "identity", "start"]
            state = ["--data-dir", str(tmp_path / "state")]
            first = cli("mezd", *argv[1:], *state, "--oneshot")
            assert first.returncode == 0, first.stderr

            ssh = [
                "ssh",
                "-F",
                str(tmp_path / "out" / "ssh_config"),
                "-o",
                "BatchMode=yes",
                "web-1",  # as the identity's first login: its ssh_config says User
                "id",
                "-un",
            ]
            assert f"    User {LOGIN}\n" in (tmp_path / "out" / "ssh_config").read_text()
            done = subprocess.run(ssh, capture_output=True, text=True, timeout=60, check=False)
            assert done.returncode == 0, done.stderr
            assert done.stdout.strip() == LOGIN

            for _ in range(3):  # renewals: no token needed any more
                again = cli(
                    "mezd",
                    "identity",
                    "start",
                    "--dest",
                    str(tmp_path / "out"),
                    *state,
                    "--oneshot",
                )
                assert again.returncode == 0, again.stderr
            done = subprocess.run(ssh, capture_output=True, text=True, timeout=60, check=False)
            assert done.returncode == 0 and done.stdout.strip() == LOGIN, done.stderr
            listed = cli(
                "mezctl",
                "agent-identities",
                "ls",
                "--format",
                "json",
                "--data-dir",
                str(auth.data_dir),
            )
            (ident,) = json.loads(listed.stdout)
            assert ident["generation"] == 4 and not ident["locked"]

            # The long-running mode holds the state lock: a second copy is refused.
            runner = subprocess.Popen(
                [str(BIN / "mezd"), "identity", "start", "--dest", str(tmp_path / "out"), *state],
                stderr=subprocess.PIPE,
                text=True,
            )
            try:
                assert runner.stderr is not None
                # It has the lock once it has written its outputs.
                while "written to" not in (line := runner.stderr.readline()):
                    assert line, "mezd identity start exited early"
                second = cli(
                    "mezd", "identity", "start", "--dest", str(tmp_path / "o2"), *state, "--oneshot"
                )
                assert second.returncode == 4 and "another" in second.stderr
            finally:
                runner.terminate()
                runner.wait(10)
                assert runner.stderr is not None
                runner.stderr.close()
