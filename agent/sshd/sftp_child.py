"""The built-in SFTP server: one process per session, asyncssh's SFTP server over stdio.

mezd starts it as root with ``python -I <this file>`` (the interpreter may sit where
only root can read, so exec-as-the-user is not possible), and this process makes
itself the login user before it reads a byte from the client: everything it will need
is imported first, then the groups, gid and uid are set for good and checked, then it
moves to the login's home. Who to become comes from mezd on the command line, never
from the client; the umask (022) and environment come from mezd as for every session.

Run as a script, it imports nothing of Mezite: the file mezd runs is the one beside
mezd's own code whatever the install layout, and nothing next to it can shadow a
module (``-I`` keeps the script's directory off ``sys.path``)."""

from __future__ import annotations

import argparse
import asyncio
import grp  # noqa: F401 - asyncssh imports it lazily (ls -l), too late once dropped
import logging
import os
import pwd  # noqa: F401 - as grp
import socket
import stat
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncssh
import asyncssh.sftp
from asyncssh.logging import logger as ssh_logger

SFTP_VERSION = 3  # what OpenSSH speaks; asyncssh's server default
MAX_BACKLOG = 4 * 1024 * 1024  # replies written and not yet taken by mezd


@dataclass(frozen=True)
class Become:
    """The login user this process turns into."""

    uid: int
    gid: int
    groups: tuple[int, ...]


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="mezd-sftp", add_help=False)
    parser.add_argument("--uid", type=int)
    parser.add_argument("--gid", type=int)
    parser.add_argument("--groups", default="")
    parser.add_argument("--home", default="/")
    parser.add_argument("--client-version", default="")
    return parser.parse_args(list(argv))


def become(user: Become) -> None:
    """Drop root for good: supplementary groups, then real/effective/saved gid, then
    uid (in this order: after the uid no other change is allowed). Raises OSError when
    any of it did not take."""
    os.setgroups(list(user.groups))
    os.setresgid(user.gid, user.gid, user.gid)
    os.setresuid(user.uid, user.uid, user.uid)
    if os.getresuid() != (user.uid,) * 3 or os.getresgid() != (user.gid,) * 3:
        raise OSError("the uid or gid did not change")
    if set(os.getgroups()) != set(user.groups):
        raise OSError("the supplementary groups did not change")
    if user.uid != 0:
        try:
            os.setuid(0)
        except PermissionError:
            return
        raise OSError("root could be regained")


def enter_home(home: str) -> None:
    """As sshd: the login's home, else ``/`` when the user may not enter it."""
    try:
        os.chdir(home)
    except OSError:
        os.chdir("/")


class _Channel:
    """What asyncssh's SFTPServer asks of its channel."""

    def __init__(self, logger: Any) -> None:
        self.logger = logger

    def get_environment(self) -> Mapping[str, str]:
        return {}

    def get_connection(self) -> None:
        return None


class _Output(asyncio.Protocol):
    """stdout's state: whether replies are backed up, and when all are flushed."""

    def __init__(self) -> None:
        self.writable = asyncio.Event()
        self.writable.set()
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.writable.set()
        if not self.done.done():
            self.done.set_result(None)


class _Reader:
    """The part of asyncssh's SSHReader the SFTP handler uses. The handler writes its
    replies without waiting, so this is where the back-pressure goes: no next request
    is read while replies are backed up (a client that asks and never reads is held,
    as OpenSSH's sftp-server holds it)."""

    def __init__(self, stream: asyncio.StreamReader, output: _Output, client_version: str) -> None:
        self._stream = stream
        self._output = output
        self._client_version = client_version
        self.logger = ssh_logger.get_child("sftp_child")

    async def readexactly(self, n: int) -> bytes:
        await self._output.writable.wait()
        return await self._stream.readexactly(n)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        # OpenSSH sends SYMLINK's arguments in the wrong order; asyncssh swaps them
        # back only when it knows the client is OpenSSH.
        return self._client_version if name == "client_version" else default


class _Writer:
    """The part of asyncssh's SSHWriter the SFTP handler uses."""

    def __init__(self, transport: asyncio.WriteTransport) -> None:
        self._transport = transport
        self.channel = self

    def write(self, data: bytes) -> None:
        self._transport.write(data)

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def close(self) -> None:
        self._transport.close()


async def _open_stdio(output: _Output) -> tuple[asyncio.StreamReader, asyncio.WriteTransport]:
    """Streams over fd 0 and 1. A socket as stdin (as ``sftp -D`` gives) is one
    connection both ways; a write-pipe transport on it would take "readable" for "peer
    closed", so it gets a socket transport instead."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**16)
    if stat.S_ISSOCK(os.fstat(0).st_mode):
        sock = socket.socket(fileno=os.dup(0))
        both = _Both(asyncio.StreamReaderProtocol(reader), output)
        connected, _ = await loop.create_connection(lambda: both, sock=sock)
        assert isinstance(connected, asyncio.WriteTransport)
        return reader, connected
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(0, "rb", buffering=0)
    )
    piped, _ = await loop.connect_write_pipe(lambda: output, os.fdopen(1, "wb", buffering=0))
    return reader, piped


class _Both(asyncio.Protocol):
    """A socket's events: input to the stream reader, output state to ``_Output``."""

    def __init__(self, reading: asyncio.StreamReaderProtocol, output: _Output) -> None:
        self._reading = reading
        self._output = output

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._reading.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._reading.data_received(data)

    def eof_received(self) -> bool:
        self._reading.eof_received()
        return True  # keep writing the last replies

    def pause_writing(self) -> None:
        self._output.pause_writing()

    def resume_writing(self) -> None:
        self._output.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._reading.connection_lost(exc)
        self._output.connection_lost(exc)


async def serve(client_version: str) -> None:
    output = _Output()
    stream, transport = await _open_stdio(output)
    # Room for a few of the largest replies before the next request waits.
    transport.set_write_buffer_limits(high=MAX_BACKLOG)
    reader = _Reader(stream, output, client_version)
    server = asyncssh.SFTPServer(_Channel(reader.logger))  # type: ignore[arg-type]
    await asyncssh.sftp.run_sftp_server(
        server,
        reader,  # type: ignore[arg-type]
        _Writer(transport),  # type: ignore[arg-type]
        SFTP_VERSION,
    )
    transport.close()
    await output.done


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    # The client sees stderr: keep asyncssh's own records off it.
    logging.getLogger("asyncssh").addHandler(logging.NullHandler())
    logging.getLogger("asyncssh").propagate = False
    try:
        if args.uid is not None:
            if args.gid is None:
                raise ValueError("--uid needs --gid")
            groups = tuple(int(g) for g in args.groups.split(",") if g)
            become(Become(args.uid, args.gid, groups))
        enter_home(args.home)
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"mezd: cannot start SFTP as the login user: {exc}\n")
        return 1
    try:
        asyncio.run(serve(args.client_version))
    except Exception as exc:  # the client gets one line, not a traceback
        sys.stderr.write(f"mezd: the SFTP server failed: {type(exc).__name__}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
