"""Attestation by the kernel (agent/attest.py) against real processes: a live one gives its
uid, gid, user and executable; one that exited (reaped or not) is refused; and the
pid-reuse guard refuses two readings of different processes, a process younger than the
call, and ids that are not those the kernel reported for the connection."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.attest import NotAttested, ProcState, attest, boot_ticks, check_same, read_state

SLEEP = "/usr/bin/sleep"


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([SLEEP, "30"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_a_live_process_is_attested(sleeper: subprocess.Popen[bytes]) -> None:
    facts = attest(sleeper.pid, os.getuid(), os.getgid(), began_ticks=boot_ticks())
    assert (facts.pid, facts.uid, facts.gid) == (sleeper.pid, os.getuid(), os.getgid())
    assert facts.exe == os.path.realpath(SLEEP)
    assert facts.user == __import__("pwd").getpwuid(os.getuid()).pw_name


def test_an_exited_process_is_refused(sleeper: subprocess.Popen[bytes]) -> None:
    sleeper.kill()
    sleeper.wait()
    with pytest.raises(NotAttested, match="gone"):
        attest(sleeper.pid, os.getuid(), os.getgid())


def test_a_zombie_is_refused(sleeper: subprocess.Popen[bytes]) -> None:
    # Exited but not reaped: /proc/PID and the pid still exist, the process does not.
    os.kill(sleeper.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while Path(f"/proc/{sleeper.pid}/exe").exists() and time.monotonic() < deadline:
        time.sleep(0.01)  # until the kernel has torn it down to a zombie
    assert Path(f"/proc/{sleeper.pid}").exists()
    with pytest.raises(NotAttested):
        attest(sleeper.pid, os.getuid(), os.getgid())


def test_other_ids_than_the_connections_are_refused(sleeper: subprocess.Popen[bytes]) -> None:
    with pytest.raises(NotAttested, match="uid or gid"):
        attest(sleeper.pid, os.getuid() + 1, os.getgid())
    with pytest.raises(NotAttested, match="uid or gid"):
        attest(sleeper.pid, os.getuid(), os.getgid() + 1)


def test_a_process_younger_than_the_call_is_refused(sleeper: subprocess.Popen[bytes]) -> None:
    started = read_state(sleeper.pid).start_ticks
    with pytest.raises(NotAttested, match="started after"):
        attest(sleeper.pid, os.getuid(), os.getgid(), began_ticks=started - 1)


def test_the_reuse_guard_compares_start_times() -> None:
    ids = (1000, 1000, 1000, 1000)
    before = ProcState(start_ticks=500, uids=ids, gids=ids)
    check_same(before, before, 1000, 1000, began_ticks=500)
    reused = ProcState(start_ticks=501, uids=ids, gids=ids)
    with pytest.raises(NotAttested, match="pid reused"):
        check_same(before, reused, 1000, 1000)
    setuid = ProcState(start_ticks=500, uids=(1000, 0, 0, 0), gids=ids)
    with pytest.raises(NotAttested, match="uid or gid"):
        check_same(before, setuid, 1000, 1000)


def test_no_pid_is_refused() -> None:
    with pytest.raises(NotAttested):
        attest(0, 0, 0)
