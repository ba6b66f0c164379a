"""`mezd start --sftp-server`: what each setting serves, and what the built-in
server is told on its command line (by mezd, never by the client)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from agent.sshd.sftp import SFTP_CHILD, SFTPService, builtin_argv, resolve_sftp
from agent.sshd.users import OSUser
from proto.errors import BadParameter
from tests.unit.test_layering import imports_of

NOBODY = OSUser("nobody", 65534, 65534, "/home/-nobody", "/bin/sh", (65534, 100))


def _program(tmp_path: Path, mode: int = 0o755) -> Path:
    path = tmp_path / "sftp-server"
    path.write_text("#!/bin/sh\n")
    path.chmod(mode)
    return path


def test_auto_prefers_the_systems_sftp_server(tmp_path: Path) -> None:
    program = _program(tmp_path)
    search = (str(tmp_path / "missing"), str(program))
    assert resolve_sftp("auto", search) == SFTPService(program=str(program))


def test_auto_falls_back_to_the_builtin(tmp_path: Path) -> None:
    _program(tmp_path, 0o644)  # not executable: not a server
    service = resolve_sftp("auto", (str(tmp_path / "sftp-server"),))
    assert service == SFTPService(builtin=True)
    assert not service.refused


def test_builtin_none_and_a_path(tmp_path: Path) -> None:
    program = _program(tmp_path)
    assert resolve_sftp("builtin", (str(program),)) == SFTPService(builtin=True)
    assert resolve_sftp("none").refused
    assert resolve_sftp(str(program)) == SFTPService(program=str(program))


@pytest.mark.parametrize("setting", ["Builtin", "sftp-server", "", "./sftp-server"])
def test_unknown_words_and_relative_paths_are_refused(setting: str) -> None:
    with pytest.raises(BadParameter, match="auto, builtin, none or an absolute path"):
        resolve_sftp(setting)


def test_a_path_that_is_no_program_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BadParameter, match="not an executable file"):
        resolve_sftp(str(tmp_path / "missing"))
    with pytest.raises(BadParameter, match="not an executable file"):
        resolve_sftp(str(_program(tmp_path, 0o644)))
    with pytest.raises(BadParameter, match="not an executable file"):
        resolve_sftp(str(tmp_path))


def test_builtin_argv_as_root_names_the_user() -> None:
    argv = builtin_argv(NOBODY, switch_user=True, client_version="SSH-2.0-OpenSSH_9.2p1")
    assert argv[:3] == [sys.executable, "-I", SFTP_CHILD]
    assert argv[3:] == [
        "--home=/home/-nobody",
        "--client-version=SSH-2.0-OpenSSH_9.2p1",
        "--uid=65534",
        "--gid=65534",
        "--groups=65534,100",
    ]


def test_builtin_argv_of_a_non_root_daemon_drops_nothing() -> None:
    argv = builtin_argv(NOBODY, switch_user=False, client_version="SSH-2.0-x")
    assert not [a for a in argv if a.startswith(("--uid", "--gid", "--groups"))]


def test_the_client_version_is_printable_and_bounded() -> None:
    argv = builtin_argv(NOBODY, switch_user=True, client_version="SSH-2.0-a\n\x00\x1bb" + "c" * 400)
    version = next(a for a in argv if a.startswith("--client-version="))
    assert version == "--client-version=SSH-2.0-ab" + "c" * (255 - len("SSH-2.0-a\n\x00\x1bb"))


def test_the_child_imports_nothing_of_mezite() -> None:
    """It runs as a script from mezd's own directory, before anything else of ours
    would be on sys.path, and drops root before it could import anything more."""
    names = {name.split(".")[0] for _, name in imports_of(Path(SFTP_CHILD))}
    assert names.isdisjoint({"agent", "cli", "proto", "server", "tests"})
    assert "asyncssh" in names


async def test_no_request_is_read_while_replies_are_backed_up() -> None:
    from agent.sshd.sftp_child import _Output, _Reader

    stream = asyncio.StreamReader()
    stream.feed_data(b"next request")
    output = _Output()
    reader = _Reader(stream, output, "SSH-2.0-OpenSSH_9.2p1")
    output.pause_writing()  # what the stdout transport says above its high-water mark
    pending = asyncio.ensure_future(reader.readexactly(4))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not pending.done()
    output.resume_writing()
    assert await pending == b"next"
    assert reader.get_extra_info("client_version") == "SSH-2.0-OpenSSH_9.2p1"
