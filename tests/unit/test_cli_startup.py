"""Behavioural guard: ``--help`` and ``--version`` must not import the heavy dependencies.

The CLIs import grpc, asyncssh, cryptography and friends inside the commands that need
them, so that ``--help`` (and shell completion) stays fast. This does not measure time;
it checks, via ``python -X importtime``, which modules were imported at all.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import proto

REPO_ROOT = Path(__file__).resolve().parents[2]
PROGRAMS = ("mez", "mezd", "mezctl")
HEAVY_MODULES = (
    "grpc",
    "grpclib",
    "asyncssh",
    "cryptography",
    "google.protobuf",
    "argon2",
    "httpx",
    "keyring",
    "sqlite3",
    "rich",  # help is click's plain text (cli.common.command_group)
    "logging",  # configured by --debug, used on failure: ~5 ms of every start-up otherwise
)


def _run_cli(prog: str, *args: str) -> subprocess.CompletedProcess[str]:
    code = (
        f"import sys; from cli.{prog} import main; sys.argv = [{prog!r}, *{list(args)!r}]; main()"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "PYTHONWARNINGS")}
    env.update({"NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "200"})
    return subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _imported_modules(stderr: str) -> set[str]:
    """Module names from ``-X importtime`` lines: ``import time: self | cumulative | name``."""
    modules: set[str] = set()
    for line in stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        name = line.rsplit("|", 1)[-1].strip()
        if name and name != "imported package":
            modules.add(name)
    return modules


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY_MODULES))


@pytest.mark.parametrize("args", [("--help",), ("--version",)], ids=["help", "version"])
@pytest.mark.parametrize("prog", PROGRAMS)
def test_no_heavy_imports(prog: str, args: tuple[str, ...]) -> None:
    result = _run_cli(prog, *args)
    assert result.returncode == 0, result.stderr
    modules = _imported_modules(result.stderr)
    # Sanity: the importtime output was parsed and covers the CLI itself.
    assert f"cli.{prog}" in modules, result.stderr[-2000:]
    heavy = _heavy(modules)
    assert not heavy, f"`{prog} {' '.join(args)}` imported heavy modules: {heavy}"


@pytest.mark.parametrize("prog", PROGRAMS)
def test_version(prog: str) -> None:
    result = _run_cli(prog, "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{prog} {proto.__version__}"


@pytest.mark.parametrize("prog", PROGRAMS)
def test_help(prog: str) -> None:
    result = _run_cli(prog, "--help")
    assert result.returncode == 0, result.stderr
    assert prog in result.stdout
    assert "--version" in result.stdout


@pytest.mark.parametrize(
    ("prog", "args"),
    [("mez", ("bogus",)), ("mezctl", ("users", "add")), ("mezd", ("join", "--nope"))],
)
def test_a_usage_error_is_plain_lines_without_rich(prog: str, args: tuple[str, ...]) -> None:
    result = _run_cli(prog, *args)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if not line.startswith("import time:")]
    assert lines[-1].startswith("Error: "), lines
    assert not _heavy(_imported_modules(result.stderr))
