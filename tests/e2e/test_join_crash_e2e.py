"""SIGKILL at each step of a join, with real processes: `mezctl start` killed after it
issued the node's certificates but before committing the join, and again right after
committing it; `mezd join` killed after auth answered but before it saved the identity.
Each time the same `mezd join` line run again completes the join (in the report, a retry
was refused with "a node named 'j4' is already registered" and the first token was spent
with no identity anywhere), no token is spent by a join that did not complete, and the
node then serves and is listed. The kills are ``proto.failpoint`` points: SIGKILL from
inside, exactly between two steps."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.procs import AuthProcess, cli, free_port, mezctl_start, mezd_start

pytestmark = pytest.mark.e2e


def mezctl(auth_dir: Path, *args: str) -> list[dict[str, object]]:
    done = cli("mezctl", *args, "--format", "json", "--data-dir", str(auth_dir))
    assert done.returncode == 0, done.stderr
    rows: list[dict[str, object]] = json.loads(done.stdout)
    return rows


def token_line(auth: AuthProcess) -> list[str]:
    made = cli("mezctl", "tokens", "add", "--type", "node", "--format", "json",
               "--data-dir", str(auth.data_dir))  # fmt: skip
    assert made.returncode == 0, made.stderr
    line: list[str] = json.loads(made.stdout)["join"].split()
    return line


def mezd_join(
    line: list[str], node_dir: Path, port: int, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return cli("mezd", "join", *line[2:], "--name", "j4", "--advertise-addr", f"127.0.0.1:{port}",
               "--data-dir", str(node_dir), env=env)  # fmt: skip


@pytest.mark.parametrize(
    ("killed", "failpoint", "retry_with"),
    [
        ("auth", "join.issued", "same token"),
        ("auth", "join.committed", "same token"),
        ("auth", "join.committed", "fresh token"),
        ("mezd", "join.replied", "same token"),
    ],
)
def test_a_join_killed_at_any_step_completes_when_run_again(
    tmp_path: Path, killed: str, failpoint: str, retry_with: str
) -> None:
    data, node_dir = tmp_path / "auth", tmp_path / "node"
    listen, node_port = f"127.0.0.1:{free_port()}", free_port()
    crash = {"MEZITE_FAILPOINT": failpoint}
    with mezctl_start(data, listen=listen, env=crash if killed == "auth" else None) as auth:
        line = token_line(auth)
        first = mezd_join(line, node_dir, node_port, env=crash if killed == "mezd" else None)
        assert first.returncode != 0
        if killed == "auth":
            assert auth.proc.wait(15) == -9  # it died at the failpoint, by SIGKILL
            assert "Traceback" not in first.stderr
            assert len(first.stderr.strip().splitlines()) <= 2, first.stderr  # line + hint
        else:
            assert first.returncode == -9
        assert not (node_dir / "identity.json").exists()
        assert (node_dir / "join-keys.json").stat().st_mode & 0o777 == 0o600
    spent_by_crash = failpoint != "join.issued"
    with mezctl_start(data, listen=listen) as auth:
        tokens = [row["name"] for row in mezctl(data, "tokens", "ls")]
        assert tokens == ([] if spent_by_crash else [line[line.index("--token") + 1][:16]])
        retry = line if retry_with == "same token" else token_line(auth)
        again = mezd_join(retry, node_dir, node_port)
        assert again.returncode == 0, again.stderr
        assert not (node_dir / "join-keys.json").exists()
        assert mezctl(data, "tokens", "ls") == []  # the fresh token too: each works once
        identity = json.loads((node_dir / "identity.json").read_text())
        (node,) = mezctl(data, "nodes", "ls")
        assert (node["name"], node["id"]) == ("j4", identity["agent_id"])
        with mezd_start(node_dir, node_port) as mezd:
            deadline = time.monotonic() + 20
            while not mezctl(data, "nodes", "ls")[0]["online"]:
                assert time.monotonic() < deadline, mezd.log.read_text()[-2000:]
                time.sleep(0.2)


@pytest.mark.parametrize(("killed", "failpoint"),
                         [("auth", "bootstrap.committed"), ("mezd", "join.replied")])  # fmt: skip
def test_an_identity_bootstrap_killed_after_auth_committed_completes_when_run_again(
    tmp_path: Path, killed: str, failpoint: str
) -> None:
    data, listen = tmp_path / "auth", f"127.0.0.1:{free_port()}"
    crash = {"MEZITE_FAILPOINT": failpoint}
    state, dest = tmp_path / "state", tmp_path / "out"
    with mezctl_start(data, listen=listen, env=crash if killed == "auth" else None) as auth:
        made = cli("mezctl", "agent-identities", "add", "ci", "--roles", "access", "--logins",
                   "ci", "--data-dir", str(auth.data_dir))  # fmt: skip
        assert made.returncode == 0, made.stderr
        line = next(x for x in made.stdout.splitlines() if "mezd identity start" in x).split()
        command = [*line[:line.index("--dest")], "--dest", str(dest), "--data-dir", str(state),
                   "--oneshot"]  # fmt: skip
        first = cli(*command, env=crash if killed == "mezd" else None)
        assert first.returncode != 0 and not (dest / "key").exists()
        if killed == "auth":
            assert auth.proc.wait(15) == -9
            assert "Traceback" not in first.stderr
    with mezctl_start(data, listen=listen):
        again = cli(*command)
        assert again.returncode == 0, again.stderr
        assert (dest / "key-cert.pub").exists()
