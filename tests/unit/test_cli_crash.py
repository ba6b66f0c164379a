"""An unexpected error (a bug, not the error vocabulary) through the real entry point: one
line naming a private, bounded log file that has the traceback; with --debug, the
traceback and DEBUG logs on stderr instead.

The bug is planted by replacing proto.profile.load_profile (which `mez status` calls)
before ``cli.mez.main()`` runs, in a child process with this test's own HOME and XDG dirs.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

PLANT = """
import logging, sys
import proto.profile
from cli.mez import main

def broken(cluster=None):
    logging.getLogger("proto.profile").debug("loading the profile")
    raise KeyError("planted-bug-7f3a")

proto.profile.load_profile = broken
sys.argv = ["mez", *sys.argv[1:]]
main()
"""


def _mez(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-c", PLANT, *args],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def _log_file() -> Path:
    # XDG_STATE_HOME is this test's own (tests/conftest.py); platformdirs reads it per call.
    import platformdirs

    return Path(platformdirs.user_log_dir("mezite")) / "mez.log"


def test_an_unexpected_error_is_one_line_and_a_log_file() -> None:
    log = _log_file()
    assert log.is_relative_to(os.environ["XDG_STATE_HOME"])
    done = _mez("status")
    assert done.returncode == 1
    assert done.stderr == f"error: unexpected KeyError (a bug in mez); details in {log}\n"
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "planted-bug-7f3a" in text
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert _mez("status").returncode == 1
    assert log.read_text().count("planted-bug-7f3a") == 2  # appended, not replaced


def test_the_log_file_is_bounded() -> None:
    log = _log_file()
    log.parent.mkdir(parents=True)
    log.write_text("x" * (1 << 20) + "old\n")
    os.chmod(log, 0o644)
    assert _mez("status").returncode == 1
    assert log.stat().st_size < 10_000 and "planted-bug-7f3a" in log.read_text()
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert log.with_name("mez.log.1").read_text().endswith("old\n")


def test_debug_shows_the_traceback_and_debug_logs() -> None:
    done = _mez("--debug", "status")
    assert done.returncode == 1
    assert "Traceback (most recent call last)" in done.stderr
    assert "KeyError: 'planted-bug-7f3a'" in done.stderr
    assert "DEBUG proto.profile: loading the profile" in done.stderr
    assert not _log_file().exists()


def test_without_debug_no_debug_logs() -> None:
    done = _mez("status")
    assert "loading the profile" not in done.stderr


@pytest.mark.parametrize("prog", ["mez", "mezctl", "mezd"])
def test_every_cli_takes_debug(prog: str) -> None:
    code = f"import sys; from cli.{prog} import main; sys.argv[1:] = ['--debug', '--help']; main()"
    done = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
