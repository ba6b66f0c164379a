"""Recording on the node SSH server: PTY sessions recorded as asciicast v2 under the
spool, everything else (exec without a terminal, sftp, certificates that say not to)
not; the session.end event names its recording."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agent.recording import RecordingMeta, Spool
from agent.recording_cast import convert
from proto.sshpolicy import NO_RECORD_EXT
from tests.integration.sshd_fixtures import ALL_PERMITS, SSH_BIN, RunningNode, running_node

pytestmark = pytest.mark.skipif(SSH_BIN is None, reason="OpenSSH client `ssh` not installed")


class Finished:
    def __init__(self) -> None:
        self.ids: list[str] = []
        self.event = asyncio.Event()

    def __call__(self, session_id: str) -> None:
        self.ids.append(session_id)
        self.event.set()

    async def next(self) -> str:
        await asyncio.wait_for(self.event.wait(), 10)
        self.event.clear()
        return self.ids[-1]


@pytest.fixture
def spool(tmp_path: Path) -> Any:
    s = Spool(tmp_path / "recordings", max_bytes=64 * 1024)
    s.ensure_directory()
    yield s
    s.shut_down()


@pytest.fixture
async def recorded(tmp_path: Path, spool: Spool) -> AsyncIterator[tuple[RunningNode, Finished]]:
    finished = Finished()
    async with running_node(tmp_path, spool=spool, recording_done=finished) as node:
        yield node, finished


def events(spool: Spool, sid: str) -> list[Any]:
    out = io.BytesIO()
    with open(spool.raw_path(sid), "rb") as raw:
        convert(raw, out, RecordingMeta.load(spool.meta_path(sid)).header())
    return [json.loads(line) for line in out.getvalue().decode().splitlines()]


async def test_pty_session_is_recorded(
    recorded: tuple[RunningNode, Finished], spool: Spool
) -> None:
    node, finished = recorded
    cert = node.certs.issue("alice")
    async with await node.connect(cert) as conn:
        process = await conn.create_process(
            "printf 'caf\\303\\251 \\342\\202\\254\\n'; read x; echo done",
            term_type="xterm-256color",
            term_size=(100, 30),
        )
        await process.stdout.readline()
        process.change_terminal_size(132, 50)
        process.stdin.write("secret-input\n")
        await process.wait()
    sid = await finished.next()
    (start,) = node.audit.of("session.start")
    assert sid == start.session_id
    header, *rest = events(spool, sid)
    assert (header["version"], header["width"], header["height"]) == (2, 100, 30)
    assert header["env"] == {"TERM": "xterm-256color", "SHELL": "/bin/sh"}
    output = "".join(e[2] for e in rest if e[1] == "o")
    assert "café €" in output and "done" in output
    assert ["r", "132x50"] in [e[1:] for e in rest]
    # Echoed by the terminal, so in the output; never as an input event.
    assert all(e[1] != "i" for e in rest)
    times = [e[0] for e in rest]
    assert times == sorted(times) and times[-1] < 10
    meta = RecordingMeta.load(spool.meta_path(sid))
    assert (meta.user, meta.login, meta.truncated) == ("alice@example.com", "alice", False)
    assert meta.ended >= meta.started > 0
    (end,) = await node.audit.wait_for("session.end")
    assert end.fields["recording"] == sid


async def test_cap_leaves_the_session_alone(
    recorded: tuple[RunningNode, Finished], spool: Spool
) -> None:
    node, finished = recorded
    cert = node.certs.issue("alice")
    # 1 MiB through a PTY, 16 times the cap: the user gets all of it.
    result = await node.ssh(
        cert, "head -c 1048576 /dev/zero | tr '\\0' x; echo; echo end", options=["-tt"],
        env=node.client_env(),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(b"x") == 1048576 and b"end" in result.stdout
    sid = await finished.next()
    last = events(spool, sid)[-1]
    assert last[1] == "m" and "truncated" in last[2]
    assert spool.raw_path(sid).stat().st_size < 64 * 1024 + 200
    assert RecordingMeta.load(spool.meta_path(sid)).truncated
    (end,) = await node.audit.wait_for("session.end")
    assert end.fields["recording"] == sid


async def test_what_is_not_recorded(recorded: tuple[RunningNode, Finished], spool: Spool) -> None:
    node, finished = recorded
    plain = node.certs.issue("alice")
    result = await node.ssh(plain, "echo no-terminal", env=node.client_env())
    assert result.returncode == 0
    no_record = node.certs.issue("norecord", permits=(*ALL_PERMITS, NO_RECORD_EXT))
    result = await node.ssh(no_record, "echo hi", options=["-tt"], env=node.client_env())
    assert result.returncode == 0, result.stderr
    await node.audit.wait_for("session.end", 2)
    await asyncio.sleep(0.2)
    assert finished.ids == [] and list(spool.directory.iterdir()) == []
    assert all("recording" not in e.fields for e in node.audit.of("session.end"))
