"""Session processes: started as the login user, never inside the daemon, and wired to
an SSH channel through asyncio transports (so flow control works both ways).

With a PTY the child gets the slave side as stdin/stdout/stderr and the daemon keeps the
master. A shell needs the slave as its *controlling* terminal (job control, ^C), which
takes ``setsid()`` plus ``TIOCSCTTY`` in the child. Python can only do that in a
``preexec_fn``, which is unsafe in a process with threads, so the child is started
through util-linux ``setsid --ctty``, which does exactly those two calls and then execs.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import struct
import termios
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from agent.sshd.ttymodes import apply_tty_modes
from agent.sshd.users import OSUser

logger = logging.getLogger(__name__)

# After a PTY child exits, its output is drained until the kernel reports the slave
# closed (EIO). A background job that kept the slave open must not hold the session.
PTY_DRAIN_SECONDS = 1.0
CHILD_UMASK = 0o022


class ChildEvents(Protocol):
    """What a child reports to its session."""

    def child_output(self, data: bytes, *, stderr: bool) -> None: ...

    def child_input_paused(self, paused: bool) -> None: ...

    def child_done(self, returncode: int) -> None:
        """The process exited and all its output has been delivered."""
        ...


@dataclass(frozen=True)
class Launch:
    """How to start one session process."""

    argv: Sequence[str]
    env: Mapping[str, str]
    user: OSUser
    # False when the daemon is not root: it can only run processes as itself (and
    # only its own user is let in, see users.login_refusal).
    switch_user: bool

    def popen_kwargs(self) -> dict[str, Any]:
        cwd = self.user.home if os.path.isdir(self.user.home) else "/"
        kwargs: dict[str, Any] = {
            "env": dict(self.env),
            "cwd": cwd,
            "umask": CHILD_UMASK,
            "close_fds": True,
        }
        if self.switch_user:
            # extra_groups is passed even when empty: that clears root's own groups.
            kwargs.update(
                user=self.user.uid, group=self.user.gid, extra_groups=list(self.user.groups)
            )
        return kwargs


def pack_winsize(width: int, height: int, pixwidth: int, pixheight: int) -> bytes:
    def clamp(value: int) -> int:
        return max(0, min(int(value), 0xFFFF))

    return struct.pack("HHHH", clamp(height), clamp(width), clamp(pixwidth), clamp(pixheight))


class _ProcessProtocol(asyncio.SubprocessProtocol):
    """Events of the child process and its pipes. A short-lived child can exit, and
    its pipes close, before ``subprocess_exec`` returns to the caller: all state is
    set up from ``connection_made``, which asyncio calls before any of those."""

    def __init__(self, child: Child) -> None:
        self._child = child

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.SubprocessTransport)
        self._child.adopt(transport)

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        assert isinstance(data, bytes)
        self._child.events.child_output(data, stderr=fd == 2)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd in (1, 2):
            self._child.output_closed()

    def process_exited(self) -> None:
        self._child.process_exited()

    def pause_writing(self) -> None:
        self._child.input_paused()

    def resume_writing(self) -> None:
        self._child.input_resumed()


class _PtyOutput(asyncio.Protocol):
    def __init__(self, child: Child) -> None:
        self._child = child

    def data_received(self, data: bytes) -> None:
        self._child.events.child_output(data, stderr=False)

    def connection_lost(self, exc: Exception | None) -> None:
        # EIO here is the normal end: every holder of the slave side has closed it.
        self._child.output_closed()


class _PtyInput(asyncio.BaseProtocol):
    def __init__(self, child: Child) -> None:
        self._child = child

    def pause_writing(self) -> None:
        self._child.input_paused()

    def resume_writing(self) -> None:
        self._child.input_resumed()


# Signals a session must receive with their default action. A disposition of SIG_IGN
# survives exec, so a mezd started with them ignored (nohup ignores SIGHUP; a shell
# without job control ignores SIGINT and SIGQUIT for background jobs) would hand that on
# to every session: a disconnect's SIGHUP, or ^C at a prompt, would do nothing. A
# *handled* signal is reset to its default on exec, so those are handled instead.
SESSION_DEFAULT_SIGNALS = (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM,
                           signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM)  # fmt: skip


def _ignored(signum: int, frame: object) -> None:
    """What SIG_IGN did for this process; its sessions get the default."""


def unignore_session_signals() -> list[str]:
    """Replace SIG_IGN by a handler that ignores (only the main thread may): the names of
    the signals changed."""
    if threading.current_thread() is not threading.main_thread():
        return []
    changed = []
    for signum in SESSION_DEFAULT_SIGNALS:
        if signal.getsignal(signum) is signal.SIG_IGN:
            signal.signal(signum, _ignored)
            changed.append(signal.Signals(signum).name)
    return changed


class Child:
    """One running session process."""

    def __init__(self, events: ChildEvents, *, pty_master: int | None = None) -> None:
        self.events = events
        self.pid = 0
        self.returncode: int | None = None
        self._transport: asyncio.SubprocessTransport | None = None
        self._stdin: asyncio.WriteTransport | None = None
        self._outputs: list[asyncio.ReadTransport] = []
        self._master = pty_master
        # With a PTY the one output is the master, read once the child runs.
        self._open_outputs = 1 if pty_master is not None else 0
        self._drain_timer: asyncio.TimerHandle | None = None
        self._exited = asyncio.Event()
        self._done = False

    @classmethod
    async def spawn(cls, events: ChildEvents, launch: Launch) -> Child:
        """Start ``launch`` with pipes for stdin, stdout and stderr."""
        child = cls(events)
        loop = asyncio.get_running_loop()
        await loop.subprocess_exec(
            lambda: _ProcessProtocol(child),
            *launch.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            **launch.popen_kwargs(),
        )
        return child

    @classmethod
    async def spawn_pty(
        cls,
        events: ChildEvents,
        launch: Launch,
        *,
        setsid: str,
        term_size: tuple[int, int, int, int],
        term_modes: Mapping[int, int],
    ) -> tuple[Child, str]:
        """Start ``launch`` on a new PTY; returns the child and the slave's path."""
        loop = asyncio.get_running_loop()
        master, slave = os.openpty()
        child = cls(events, pty_master=master)
        try:
            tty_path = os.ttyname(slave)
            fcntl.ioctl(slave, termios.TIOCSWINSZ, pack_winsize(*term_size))
            apply_tty_modes(slave, term_modes)
            if launch.switch_user:
                _give_tty(tty_path, launch.user)
            env = {**launch.env, "SSH_TTY": tty_path}
            kwargs = launch.popen_kwargs() | {"env": env}
            await loop.subprocess_exec(
                lambda: _ProcessProtocol(child),
                setsid,
                "--ctty",
                *launch.argv,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                **kwargs,
            )
        except BaseException:
            os.close(master)
            raise
        finally:
            # The child has its copies; the master sees EIO once they are all closed.
            os.close(slave)
        out_file = os.fdopen(master, "rb", buffering=0)
        in_file = os.fdopen(os.dup(master), "wb", buffering=0)
        out_transport, _ = await loop.connect_read_pipe(lambda: _PtyOutput(child), out_file)
        child._outputs = [out_transport]
        in_transport, _ = await loop.connect_write_pipe(lambda: _PtyInput(child), in_file)
        child._stdin = in_transport
        return child, tty_path

    def adopt(self, transport: asyncio.SubprocessTransport) -> None:
        self._transport = transport
        self.pid = transport.get_pid()
        if self._master is None:
            self._stdin = _write_pipe(transport.get_pipe_transport(0))
            self._outputs = [_read_pipe(transport.get_pipe_transport(fd)) for fd in (1, 2)]
            self._open_outputs = 2
        logger.debug("session process %d started", self.pid)

    # -- input from the client ------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self._stdin is not None and not self._stdin.is_closing():
            self._stdin.write(data)

    def write_eof(self) -> None:
        if self._stdin is None or self._stdin.is_closing():
            return
        if self._master is None:
            self._stdin.write_eof()
        # A PTY cannot be half-closed; as OpenSSH does, EOF from the client is not
        # passed on (the user types ^D instead).

    def pause_output(self) -> None:
        for transport in self._outputs:
            if not transport.is_closing():
                transport.pause_reading()

    def resume_output(self) -> None:
        for transport in self._outputs:
            if not transport.is_closing():
                transport.resume_reading()

    def resize(self, width: int, height: int, pixwidth: int, pixheight: int) -> None:
        """Set the PTY's size; the kernel sends SIGWINCH to the foreground job."""
        if self._master is not None and self._outputs and not self._outputs[0].is_closing():
            fcntl.ioctl(
                self._master, termios.TIOCSWINSZ, pack_winsize(width, height, pixwidth, pixheight)
            )

    def send_signal(self, signum: int) -> None:
        """Signal the session's process group (the command and what it started)."""
        if self.returncode is not None or not self.pid:
            return
        try:
            os.killpg(self.pid, signum)
        except ProcessLookupError:
            # Not (yet) a group leader: setsid has not run in the child.
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def hangup(self) -> None:
        """The client is gone: hang up the session as a terminal would."""
        self.send_signal(signal.SIGHUP)
        # Twice is possible (the connection goes, then the server closes): asyncio's
        # pipe transport raises when aborted after it has finished closing.
        if self._stdin is not None and not self._stdin.is_closing():
            self._stdin.abort()  # input nobody will read any more
        if self._master is not None:
            for transport in self._outputs:
                transport.close()

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    async def wait(self) -> int:
        await self._exited.wait()
        assert self.returncode is not None
        return self.returncode

    def input_paused(self) -> None:
        self.events.child_input_paused(True)

    def input_resumed(self) -> None:
        # Not from inside the transport's callback: resuming the channel delivers
        # buffered data and maybe EOF synchronously, and asyncio's pipe transport
        # (CPython 3.11-3.13, _UnixWritePipeTransport._write_ready) closes right after
        # resume_writing() returns if EOF was asked for meanwhile, dropping whatever
        # was written during the call.
        asyncio.get_running_loop().call_soon(self.events.child_input_paused, False)

    # -- process and output state ---------------------------------------------------

    def process_exited(self) -> None:
        assert self._transport is not None
        returncode = self._transport.get_returncode()
        self.returncode = -signal.SIGKILL if returncode is None else returncode
        logger.debug("session process %d exited: %d", self.pid, self.returncode)
        self._exited.set()
        if self._master is not None and self._open_outputs:
            loop = asyncio.get_running_loop()
            self._drain_timer = loop.call_later(PTY_DRAIN_SECONDS, self._stop_draining)
        self._maybe_done()

    def output_closed(self) -> None:
        self._open_outputs -= 1
        logger.debug("session process %d output closed, %d open", self.pid, self._open_outputs)
        self._maybe_done()

    def _stop_draining(self) -> None:
        for transport in self._outputs:
            transport.close()

    def _maybe_done(self) -> None:
        if self._done or self.returncode is None or self._open_outputs > 0:
            return
        self._done = True
        if self._drain_timer is not None:
            self._drain_timer.cancel()
        if self._stdin is not None:
            self._stdin.close()
        for transport in self._outputs:
            transport.close()
        if self._transport is not None:
            self._transport.close()
        self.events.child_done(self.returncode)


def _write_pipe(transport: asyncio.BaseTransport | None) -> asyncio.WriteTransport:
    assert isinstance(transport, asyncio.WriteTransport)
    return transport


def _read_pipe(transport: asyncio.BaseTransport | None) -> asyncio.ReadTransport:
    assert isinstance(transport, asyncio.ReadTransport)
    return transport


def _give_tty(path: str, user: OSUser) -> None:
    """Hand the terminal to the user, as login and sshd do: owner user, group tty,
    0620 (the group bit is what lets ``write``/``wall`` reach it)."""
    import grp

    try:
        tty_gid = grp.getgrnam("tty").gr_gid
    except KeyError:
        tty_gid = user.gid
    os.chown(path, user.uid, tty_gid)
    os.chmod(path, 0o620)
