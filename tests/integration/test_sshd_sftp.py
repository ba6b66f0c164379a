"""SFTP and scp on the node SSH server: run as the login user (never in the root
daemon), audited, served by the system's sftp-server or, when it has none, by the
built-in one, and refused with a readable reason when turned off."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import pytest

from agent.sshd.sftp import SFTP_CHILD, find_sftp_server
from tests.integration.sshd_fixtures import SCP_BIN, SFTP_BIN, RunningNode, run, running_node

pytestmark = pytest.mark.skipif(
    SFTP_BIN is None or SCP_BIN is None, reason="OpenSSH `sftp`/`scp` not installed"
)

SYSTEM = pytest.param(
    "system",
    marks=pytest.mark.skipif(find_sftp_server() is None, reason="no sftp-server on this host"),
)


def _no_system_sftp(tmp_path: Path) -> dict[str, object]:
    """A host without sftp-server, as on a fresh Debian: the lookup finds nothing."""
    empty = tmp_path / "empty"
    empty.mkdir(exist_ok=True)
    return {"sftp_search": (str(empty / "sftp-server"),)}


@pytest.fixture(params=[SYSTEM, "builtin"])
async def node(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RunningNode]:
    """Every test below runs against both servers; "builtin" is what "auto" picks on
    a host with no sftp-server."""
    config = {} if request.param == "system" else _no_system_sftp(tmp_path)
    async with running_node(tmp_path, **config) as running:
        yield running


@pytest.fixture
async def builtin(tmp_path: Path) -> AsyncIterator[RunningNode]:
    async with running_node(tmp_path, sftp_server="builtin") as running:
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


def _builtin_children() -> list[int]:
    """This process's children that run the built-in SFTP server."""
    me, found = os.getpid(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat_fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat_fields[1]) == me and SFTP_CHILD.encode() in cmdline:
            found.append(int(entry.name))
    return found


def _status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {key: value.strip() for key, _, value in (line.partition(":") for line in lines)}


async def test_builtin_child_is_the_user_before_the_client_says_anything(
    builtin: RunningNode,
) -> None:
    """A subsystem channel that never sends a byte: the child still becomes nobody
    (all of uid, gid and groups, real, effective, saved), with no capabilities left."""
    cert = builtin.certs.issue("nobody")
    async with await builtin.connect(cert, login="nobody") as conn:
        chan, _ = await conn.create_session(asyncssh.SSHClientSession, subsystem="sftp")
        deadline = time.monotonic() + 20
        while True:
            children = _builtin_children()
            status = _status(children[0]) if children else {}
            if status.get("Uid", "").split() == ["65534"] * 4:
                break
            assert time.monotonic() < deadline, f"child did not become nobody: {status}"
            await asyncio.sleep(0.02)
        assert status["Gid"].split() == ["65534"] * 4
        assert status["Groups"].split() == ["65534"]
        assert status["CapEff"] == status["CapPrm"] == "0" * 16
        assert os.readlink(f"/proc/{children[0]}/cwd") == str(builtin.nobody_home)
        chan.close()


async def test_builtin_is_used_when_configured_even_with_a_system_server(
    builtin: RunningNode,
) -> None:
    cert = builtin.certs.issue("nobody")
    async with (
        await builtin.connect(cert, login="nobody") as conn,
        conn.start_sftp_client() as sftp,
    ):
        assert await sftp.getcwd() == str(builtin.nobody_home)
        assert len(_builtin_children()) == 1
        with pytest.raises(asyncssh.SFTPPermissionDenied):
            await sftp.open("/root/.profile" if Path("/root").exists() else "/etc/shadow", "r")
    await builtin.audit.wait_for("sftp", 2)


async def test_openssh_sftp_symlink_and_a_large_file(node: RunningNode) -> None:
    """OpenSSH sends SYMLINK's arguments swapped; the built-in server must know the
    client is OpenSSH to get `ln -s` right. A 5 MB file comes back byte for byte."""
    payload = os.urandom(5 * 1024 * 1024 + 17)
    (node.client_dir / "big.bin").write_bytes(payload)
    home = node.nobody_home
    batch = (
        f"put {node.client_dir}/big.bin {home}/big.bin\n"
        f"ln -s {home}/big.bin {home}/link\n"
        f"get {home}/link {node.client_dir}/back.bin\n"
    )
    code, err = await _sftp(node, "nobody", batch)
    assert code == 0, err
    assert os.readlink(home / "link") == f"{home}/big.bin"
    assert (home / "link").lstat().st_uid == 65534
    assert (home / "big.bin").stat().st_mode & 0o777 == 0o644  # umask 022
    assert (node.client_dir / "back.bin").read_bytes() == payload


async def test_builtin_over_a_socket_with_sftp_d(tmp_path: Path) -> None:
    """The canary for the asyncssh internals the child uses: OpenSSH's sftp runs it
    directly (-D) with one socket as stdin and stdout, as root told to become nobody."""
    assert SFTP_BIN is not None
    async with running_node(tmp_path) as node:  # only for its nobody home
        home = node.nobody_home
        (tmp_path / "up.bin").write_bytes(b"x" * 300_000)
        (tmp_path / "batch").write_text(
            f"put {tmp_path}/up.bin up.bin\nln -s up.bin link\nls -l\n"
            f"get link {tmp_path}/back.bin\nput {tmp_path}/up.bin {home.parent}/no.bin\n"
        )
        program = (
            f"{sys.executable} -I {SFTP_CHILD} --uid=65534 --gid=65534 --groups=65534 "
            f"--home={home} --client-version=SSH-2.0-OpenSSH_9.2p1"
        )
        result = await run(SFTP_BIN, "-b", str(tmp_path / "batch"), "-D", program)
        err = result.stderr.decode()
        assert result.returncode != 0  # the last put is refused, and -b stops there
        assert "Permission denied" in err
        assert "nobody" in result.out
        assert os.readlink(home / "link") == "up.bin"
        assert (home / "up.bin").stat().st_uid == 65534
        assert (tmp_path / "back.bin").read_bytes() == b"x" * 300_000
        assert not (home.parent / "no.bin").exists()


async def test_sftp_turned_off_says_so_to_the_client(tmp_path: Path) -> None:
    async with running_node(tmp_path, sftp_server="none") as node:
        code, err = await _sftp(node, "nobody", "ls\n")
        assert code != 0
        assert "mezd: SFTP is turned off on this node (scp -O still works)" in err
        assert SCP_BIN is not None
        (node.client_dir / "f").write_text("x")
        cert = node.certs.issue("scp-none")
        scp = await run(
            SCP_BIN,
            *node.ssh_options(cert),
            "-P",
            str(node.port),
            str(node.client_dir / "f"),
            f"nobody@127.0.0.1:{node.nobody_home}/f",
            env=node.client_env(),
        )
        assert scp.returncode != 0
        assert "turned off on this node" in scp.stderr.decode()
        assert not (node.nobody_home / "f").exists()
        other = await node.ssh(cert, "netconf", login="nobody", options=["-s"])
        assert other.returncode != 0
        assert "this node has no subsystem 'netconf', only sftp" in other.stderr.decode()
        assert node.audit.of("sftp") == []
        assert _builtin_children() == []
        refused = [e for e in node.audit.of("session.start") if not e.success]
        assert [e.fields["kind"] for e in refused] == ["sftp", "sftp", "subsystem"]
        assert all(e.fields["error"] for e in refused)
