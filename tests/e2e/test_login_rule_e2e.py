"""The login rule from the command line: each mezctl command that takes a login refuses
one that could never be signed with one clear line, and changes nothing."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.procs import AuthProcess, cli, mezctl_start

pytestmark = pytest.mark.e2e
BAD = "!root"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthProcess]:
    with mezctl_start(tmp_path_factory.mktemp("e2e") / "data") as auth:
        yield auth


def mezctl(
    auth: AuthProcess, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return cli("mezctl", *args, "--data-dir", str(auth.data_dir), stdin=stdin)


def listings(auth: AuthProcess) -> list[str]:
    return [
        mezctl(auth, *what, "--format", "json").stdout
        for what in (("users", "ls"), ("get", "roles"), ("agent-identities", "ls"), ("lock", "ls"))
    ]


def role_file(tmp_path: Path) -> str:
    path = tmp_path / "role.yaml"
    path.write_text(
        f"kind: role\nmetadata:\n  name: bang\nspec:\n  allow:\n    logins: [ubuntu, '{BAD}']\n"
    )
    return str(path)


@pytest.mark.parametrize(
    "command",
    ["users-add", "users-add-invite", "create-role", "agent-identities-add", "lock-add"],
)
def test_each_command_refuses_the_login_in_one_line(
    cluster: AuthProcess, tmp_path: Path, command: str
) -> None:
    args = {
        "users-add": ["users", "add", "bang", "--roles", "access", "--logins", f"ok,{BAD}",
                      "--password-stdin"],
        "users-add-invite": ["users", "add", "bang", "--roles", "access", "--logins", BAD],
        "create-role": ["create", "-f", role_file(tmp_path)],
        "agent-identities-add": ["agent-identities", "add", "bang", "--roles", "access",
                                 "--logins", BAD],
        "lock-add": ["lock", "add", "--login", BAD],
    }[command]  # fmt: skip
    before = listings(cluster)
    done = mezctl(cluster, *args, stdin="a long enough password\n")
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "invalid login" in done.stderr and BAD in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert len([line for line in done.stderr.splitlines() if line.startswith("error")]) == 1
    assert listings(cluster) == before
