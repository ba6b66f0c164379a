"""SFTP and scp on the node SSH server: run as the login user (never in the root
daemon), audited, and refused cleanly when the host has no sftp-server."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import pytest

from agent.sshd.sftp import find_sftp_server
from tests.integration.sshd_fixtures import SCP_BIN, SFTP_BIN, RunningNode, run, running_node

pytestmark = [
    pytest.mark.skipif(
        SFTP_BIN is None or SCP_BIN is None, reason="OpenSSH `sftp`/`scp` not installed"
    ),
    pytest.mark.skipif(find_sftp_server() is None, reason="no sftp-server on this host"),
]


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[RunningNode]:
    async with running_node(tmp_path) as running:
        yield running


async def _sftp(node: RunningNode, login: str, batch: str) -> tuple[int, str]:
    assert SFTP_BIN is not None
    cert = node.certs.issue(f"sftp-{login}-{len(node.audit.events)}")
    batch_file = node.client_dir / "batch"
    batch_file.write_text(batch)
    result = await run(
        SFTP_BIN,
        *node.ssh_options(cert),
        "-P",
        str(node.port),
        "-b",
        str(batch_file),
        f"{login}@127.0.0.1",
        env=node.client_env(),
    )
    return result.returncode, result.stderr.decode()


async def test_sftp_runs_with_the_login_users_rights(node: RunningNode) -> None:
    upload = node.client_dir / "upload.txt"
    upload.write_text("hello from sftp\n")
    root_dir = node.nobody_home.parent  # root-owned, 0755

    code, err = await _sftp(node, "nobody", f"put {upload} {node.nobody_home}/mine.txt\n")
    assert code == 0, err
    written = node.nobody_home / "mine.txt"
    assert written.read_text() == "hello from sftp\n"
    assert written.stat().st_uid == 65534

    code, err = await _sftp(node, "nobody", f"put {upload} {root_dir}/theirs.txt\n")
    assert code != 0
    assert "Permission denied" in err
    assert not (root_dir / "theirs.txt").exists()

    starts = [e for e in node.audit.of("sftp") if e.fields["action"] == "start"]
    ends = await node.audit.wait_for("sftp", 4)
    assert len(starts) == 2
    assert {e.fields["login"] for e in ends} == {"nobody"}


async def test_sftp_with_asyncssh_cannot_escape_the_user(node: RunningNode) -> None:
    cert = node.certs.issue("nobody")
    async with await node.connect(cert, login="nobody") as conn, conn.start_sftp_client() as sftp:
        async with sftp.open(f"{node.nobody_home}/a.txt", "w") as handle:
            await handle.write("ok")
        with pytest.raises(asyncssh.SFTPPermissionDenied):
            await sftp.open(f"{node.nobody_home.parent}/b.txt", "w")
        with pytest.raises(asyncssh.SFTPPermissionDenied):
            await sftp.open("/etc/shadow", "r")
    assert (node.nobody_home / "a.txt").stat().st_uid == 65534


@pytest.mark.parametrize("legacy", [False, True], ids=["scp-over-sftp", "scp-legacy"])
async def test_scp_round_trip(node: RunningNode, legacy: bool) -> None:
    assert SCP_BIN is not None
    cert = node.certs.issue("nobody")
    source = node.client_dir / "source.bin"
    payload = os.urandom(300_000)
    source.write_bytes(payload)
    back = node.client_dir / "back.bin"
    mode = ["-O"] if legacy else []
    common = [*mode, *node.ssh_options(cert), "-P", str(node.port)]
    remote = f"nobody@127.0.0.1:{node.nobody_home}/copy.bin"

    up = await run(SCP_BIN, *common, str(source), remote, env=node.client_env())
    assert up.returncode == 0, up.stderr
    assert (node.nobody_home / "copy.bin").stat().st_uid == 65534
    down = await run(SCP_BIN, *common, remote, str(back), env=node.client_env())
    assert down.returncode == 0, down.stderr
    assert back.read_bytes() == payload

    if legacy:
        events = await node.audit.wait_for("scp", 2)
        assert [e.fields["mode"] for e in events] == ["upload", "download"]
        assert all(e.fields["exit_code"] == 0 for e in events)
        assert node.audit.of("exec") == []
    else:
        await node.audit.wait_for("sftp", 4)


async def test_scp_cannot_write_where_the_user_cannot(node: RunningNode) -> None:
    assert SCP_BIN is not None
    cert = node.certs.issue("nobody")
    source = node.client_dir / "source.txt"
    source.write_text("x")
    target = f"nobody@127.0.0.1:{node.nobody_home.parent}/nope.txt"
    for mode in ([], ["-O"]):
        result = await run(
            SCP_BIN,
            *mode,
            *node.ssh_options(cert),
            "-P",
            str(node.port),
            str(source),
            target,
            env=node.client_env(),
        )
        assert result.returncode != 0
        assert "Permission denied" in result.stderr.decode()
    assert not (node.nobody_home.parent / "nope.txt").exists()


async def test_sftp_refused_without_an_sftp_server(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="agent.sshd")
    async with running_node(tmp_path, sftp_server="/nonexistent/sftp-server") as node:
        code, err = await _sftp(node, "nobody", "ls\n")
        assert code != 0
        assert "subsystem request failed" in err
        assert node.audit.of("sftp") == []
    messages = [r.getMessage() for r in caplog.records]
    assert any("no sftp-server program found" in m for m in messages)
    assert any("refused sftp for nobody" in m for m in messages)
