"""Sessions on the node SSH server, driven by the real OpenSSH client (and asyncssh
where OpenSSH cannot be scripted: window changes, signals, disconnects)."""

from __future__ import annotations

import asyncio
import os
import pwd
import re
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import pytest

from tests.integration.sshd_fixtures import SSH_BIN, RunningNode, running_node

pytestmark = pytest.mark.skipif(SSH_BIN is None, reason="OpenSSH client `ssh` not installed")

MY_NAME = pwd.getpwuid(os.getuid()).pw_name


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[RunningNode]:
    async with running_node(tmp_path) as running:
        yield running


async def test_exec_runs_as_the_mapped_user_and_is_audited(node: RunningNode) -> None:
    cert = node.certs.issue("alice")
    result = await node.ssh(cert, "id -un", env=node.client_env())
    assert result.returncode == 0, result.stderr
    assert result.out.strip() == MY_NAME

    (start,) = node.audit.of("session.start")
    assert start.user == "alice@example.com"
    assert start.fields["login"] == "alice"
    assert start.fields["login_user"] == MY_NAME
    assert start.fields["remote_addr"] == "127.0.0.1"
    assert start.fields["pty"] is False
    assert start.fields["key_id"] == "user=alice@example.com serial=101"
    assert start.fields["serial"] == 101
    (exec_event,) = await node.audit.wait_for("exec")
    assert exec_event.fields["command"] == "id -un"
    assert exec_event.fields["exit_code"] == 0
    assert exec_event.session_id == start.session_id
    (end,) = await node.audit.wait_for("session.end")
    assert end.session_id == start.session_id


async def test_exec_as_unprivileged_user_drops_every_root_privilege(node: RunningNode) -> None:
    cert = node.certs.issue("nobody")
    result = await node.ssh(
        cert,
        'id -u; id -g; id -G; pwd; echo "$HOME $USER $LOGNAME $SHELL"; umask',
        login="nobody",
        env=node.client_env(),
    )
    assert result.returncode == 0, result.stderr
    assert result.out.splitlines() == [
        "65534",
        "65534",
        "65534",
        str(node.nobody_home),
        f"{node.nobody_home} nobody nobody /bin/sh",
        "0022",
    ]


async def test_exit_status_is_propagated(node: RunningNode) -> None:
    cert = node.certs.issue("alice")
    result = await node.ssh(cert, "exit 3", env=node.client_env())
    assert result.returncode == 3
    (exec_event,) = await node.audit.wait_for("exec")
    assert exec_event.fields["exit_code"] == 3


async def test_stdin_is_piped_through_and_eof_ends_it(node: RunningNode) -> None:
    cert = node.certs.issue("alice")
    payload = os.urandom(3 * 1024 * 1024)  # well past every window and buffer
    result = await node.ssh(cert, "cat", stdin=payload, env=node.client_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout == payload


async def test_large_output_arrives_whole_with_stderr_separate(node: RunningNode) -> None:
    cert = node.certs.issue("alice")
    result = await node.ssh(cert, "head -c 8000000 /dev/zero; echo oops >&2", env=node.client_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"\0" * 8_000_000
    assert result.stderr == b"oops\n"


async def test_only_lang_lc_and_term_variables_are_accepted(node: RunningNode) -> None:
    cert = node.certs.issue("alice")
    result = await node.ssh(
        cert,
        'echo "$LANG/$FOO/$LC_TIME/${LD_PRELOAD:-unset}"',
        options=[
            "-o",
            "SendEnv=LANG",
            "-o",
            "SendEnv=FOO",
            "-o",
            "SendEnv=LC_*",
            "-o",
            "SendEnv=LD_PRELOAD",
        ],
        env=node.client_env(LANG="C.UTF-8", FOO="bar", LC_TIME="C", LD_PRELOAD="/x.so"),
    )
    assert result.returncode == 0, result.stderr
    assert result.out.strip() == "C.UTF-8//C/unset"


async def test_daemon_environment_does_not_leak(
    node: RunningNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEZITE_DAEMON_SECRET_MARKER", "leaked")
    cert = node.certs.issue("alice")
    result = await node.ssh(cert, "env", env=node.client_env())
    assert result.returncode == 0, result.stderr
    assert "MEZITE_DAEMON_SECRET_MARKER" not in result.out
    assert "MEZITE_USER=alice@example.com" in result.out
    assert re.search(r"^SSH_CONNECTION=127\.0\.0\.1 \d+ 127\.0\.0\.1 \d+$", result.out, re.M)


async def test_pty_session_gets_a_controlling_terminal(node: RunningNode) -> None:
    cert = node.certs.issue("nobody")
    result = await node.ssh(
        cert,
        'tty; stat -c %U "$(tty)"; echo "$TERM"; (: </dev/tty) && echo ctty-ok',
        login="nobody",
        options=["-tt"],
        env=node.client_env(TERM="xterm-256color"),
    )
    assert result.returncode == 0, result.stderr
    lines = result.out.replace("\r", "").splitlines()
    assert re.fullmatch(r"/dev/pts/\d+", lines[0]), lines
    assert lines[1:] == ["nobody", "xterm-256color", "ctty-ok"]
    (start,) = node.audit.of("session.start")
    assert start.fields["pty"] is True


async def test_pty_is_refused_without_permit_pty(node: RunningNode) -> None:
    cert = node.certs.issue("nopty", permits=("permit-port-forwarding",))
    # ssh -tt insists on a PTY: refused, it gives up on the session.
    result = await node.ssh(cert, "tty", options=["-tt"], env=node.client_env())
    assert result.returncode == 255
    assert "PTY allocation request failed" in result.stderr.decode()
    assert result.stdout == b""
    async with await node.connect(cert) as conn:
        with pytest.raises(asyncssh.ChannelOpenError, match="PTY"):
            await conn.create_process("tty", term_type="xterm")
        # Without a PTY the same certificate runs commands.
        completed = await conn.run("tty")
        assert str(completed.stdout).strip() == "not a tty"
    assert all(event.fields["pty"] is False for event in node.audit.of("session.start"))


async def test_pty_exit_status_and_interactive_shell(node: RunningNode) -> None:
    cert = node.certs.issue("alice")
    result = await node.ssh(
        cert, options=["-tt"], stdin=b"echo hi-from-shell\nexit 5\n", env=node.client_env()
    )
    assert result.returncode == 5, result.stderr
    assert b"hi-from-shell" in result.stdout


async def test_window_change_reaches_the_terminal(node: RunningNode) -> None:
    cert = node.certs.issue("alice")
    async with await node.connect(cert) as conn:
        process = await conn.create_process(
            "stty size; read x; stty size", term_type="xterm", term_size=(80, 24)
        )
        assert (await process.stdout.readline()).strip() == "24 80"
        process.change_terminal_size(132, 50)
        process.stdin.write("go\n")
        lines: list[str] = []
        while "50 132" not in lines:
            line = await asyncio.wait_for(process.stdout.readline(), 10)
            assert line, lines
            lines.append(line.strip())
        await process.wait()


async def test_client_terminal_modes_are_applied(node: RunningNode) -> None:
    cert = node.certs.issue("alice")
    async with await node.connect(cert) as conn:
        modes = {asyncssh.PTY_ECHO: 0, asyncssh.PTY_VERASE: 8, asyncssh.PTY_ICRNL: 0}
        completed = await conn.run("stty -a", term_type="xterm", term_modes=modes)
    settings = str(completed.stdout)
    assert re.search(r"(^|\s)-echo(\s|$)", settings), settings
    assert re.search(r"(^|\s)-icrnl(\s|$)", settings), settings
    assert "erase = ^H" in settings


async def test_client_signal_reaches_the_command(node: RunningNode) -> None:
    cert = node.certs.issue("alice")
    async with await node.connect(cert) as conn:
        process = await conn.create_process("echo ready; sleep 30")
        assert (await process.stdout.readline()).strip() == "ready"
        process.send_signal("TERM")
        completed = await asyncio.wait_for(process.wait(), 10)
        assert completed.exit_signal is not None
        assert completed.exit_signal[0] == "TERM"
    (exec_event,) = await node.audit.wait_for("exec")
    assert exec_event.fields["signal"] == "TERM"
    assert exec_event.fields["exit_code"] is None


async def test_exit_by_signal_is_reported(node: RunningNode) -> None:
    cert = node.certs.issue("alice")
    async with await node.connect(cert) as conn:
        completed = await conn.run("kill -KILL $$")
        assert completed.exit_signal is not None
        assert completed.exit_signal[0] == "KILL"
    result = await node.ssh(cert, "kill -TERM $$", env=node.client_env())
    assert result.returncode == 255


async def test_stdin_eof_with_asyncssh(node: RunningNode) -> None:
    cert = node.certs.issue("alice")
    async with await node.connect(cert) as conn:
        completed = await conn.run("wc -c", input="12345")
        assert completed.exit_status == 0
        assert str(completed.stdout).strip() == "5"


async def test_sessions_share_a_connection_up_to_a_limit(node: RunningNode) -> None:
    cert = node.certs.issue("alice")
    async with await node.connect(cert) as conn:
        results = await asyncio.gather(*(conn.run(f"echo {i}") for i in range(5)))
        assert [str(r.stdout).strip() for r in results] == [str(i) for i in range(5)]
        running = [await conn.create_process("read x") for _ in range(10)]
        with pytest.raises(asyncssh.ChannelOpenError):
            await conn.create_process("true")
        for process in running:
            process.stdin.write_eof()
        for process in running:
            assert (await process.wait()).exit_status != 0  # read found EOF


async def test_disconnect_hangs_up_the_session(node: RunningNode) -> None:
    cert = node.certs.issue("nobody")
    conn = await node.connect(cert, login="nobody")
    process = await conn.create_process("echo $$; exec sleep 60")
    pid = int((await process.stdout.readline()).strip())
    assert _alive(pid)
    conn.close()
    await conn.wait_closed()
    deadline = time.monotonic() + 10
    while _alive(pid):
        assert time.monotonic() < deadline, "session process survived the disconnect"
        await asyncio.sleep(0.01)
    (end,) = await node.audit.wait_for("session.end")
    assert end.fields["login"] == "nobody"


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGINT])
async def test_a_node_started_ignoring_signals_does_not_pass_that_on(
    tmp_path: Path, signum: int
) -> None:
    """`nohup mezd start` ignores SIGHUP, and an ignored signal survives exec: sessions
    would ignore their hangup (and ^C, for SIGINT ignored by a shell's background job).
    The node handles them instead, which exec resets to the default."""
    before = signal.signal(signum, signal.SIG_IGN)
    try:
        async with running_node(tmp_path) as node:
            cert = node.certs.issue("nobody")
            async with await node.connect(cert, login="nobody") as conn:
                process = await conn.create_process("echo $$; exec sleep 60")
                pid = int((await process.stdout.readline()).strip())
                os.kill(pid, signum)
                assert (await asyncio.wait_for(process.wait(), 10)).returncode == -signum
    finally:
        signal.signal(signum, before)


async def test_closing_the_server_ends_running_sessions(tmp_path: Path) -> None:
    async with running_node(tmp_path) as node:
        cert = node.certs.issue("alice")
        conn = await node.connect(cert)
        process = await conn.create_process("echo $$; exec sleep 60")
        pid = int((await process.stdout.readline()).strip())
        node.server.close()
        await node.server.wait_closed()
        await conn.wait_closed()
        assert not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is gone for our purpose.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False
