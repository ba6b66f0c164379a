"""One SSH session channel: a shell, a command or the sftp subsystem, run as the login
user in a child process (see process.py), with its start and end audited."""

from __future__ import annotations

import asyncio
import logging
import signal
import uuid
from collections.abc import Mapping
from typing import Any

import asyncssh

from agent.recording import RecordingMeta, SessionRecorder
from agent.sshd.config import truncate_command
from agent.sshd.context import AuthorizedLogin, NodeContext, emit_login_event
from agent.sshd.environment import session_env
from agent.sshd.forwarding import hand_agent_socket
from agent.sshd.process import Child, Launch
from agent.sshd.sftp import SFTP_SUBSYSTEM, builtin_argv, scp_mode

logger = logging.getLogger(__name__)

# The signal names of RFC 4254 section 6.9; others from clients are ignored.
CLIENT_SIGNALS: Mapping[str, signal.Signals] = {
    name: signal.Signals[f"SIG{name}"]
    for name in (
        "ABRT",
        "ALRM",
        "FPE",
        "HUP",
        "ILL",
        "INT",
        "KILL",
        "PIPE",
        "QUIT",
        "SEGV",
        "TERM",
        "USR1",
        "USR2",
    )
}
MAX_COMMAND_BYTES = 256 * 1024  # as Linux's ARG_MAX for a single argument (MAX_ARG_STRLEN)
MAX_PENDING_INPUT = 1024 * 1024


class NodeSession(asyncssh.SSHServerSession[bytes]):
    def __init__(self, node: NodeContext, login: AuthorizedLogin) -> None:
        self._node = node
        self._login = login
        self.session_id = str(uuid.uuid4())
        self._chan: asyncssh.SSHServerChannel[bytes] | None = None
        self._kind = "shell"
        self._command = ""
        self._refusal: str | None = None  # why this session is refused once started
        self._term: tuple[str, tuple[int, int, int, int], Mapping[int, int]] | None = None
        self._child: Child | None = None
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._pending_eof = False
        self._input_paused = False  # the child's stdin is full
        self._start_task: asyncio.Task[None] | None = None
        self._started_at = 0.0
        self._start_audited = False
        self._exit_code: int | None = None
        self._exit_signal: str | None = None
        self._channel_closed = False
        self._recorder: SessionRecorder | None = None

    @property
    def closed(self) -> bool:
        return self._channel_closed

    # -- requests before the session starts ----------------------------------------

    def connection_made(self, chan: asyncssh.SSHServerChannel[bytes]) -> None:
        self._chan = chan

    def pty_requested(
        self, term_type: str, term_size: tuple[int, int, int, int], term_modes: Mapping[int, int]
    ) -> bool:
        if not self._login.identity.permit_pty:
            logger.info("refused PTY for %s: certificate lacks permit-pty", self._login.login)
            return False
        if self._node.setsid is None:
            logger.error("refused PTY: util-linux setsid not found, cannot give a controlling tty")
            return False
        self._term = (term_type[:64], term_size, dict(term_modes))
        return True

    def shell_requested(self) -> bool:
        self._kind = "shell"
        return True

    def exec_requested(self, command: str) -> bool:
        if len(command.encode()) > MAX_COMMAND_BYTES or "\0" in command:
            return False
        self._kind = "scp" if scp_mode(command) else "exec"
        self._command = command
        return True

    def subsystem_requested(self, subsystem: str) -> bool:
        # A refusal is a session that explains itself and exits 1: a failed request
        # tells the user only "subsystem request failed", and OpenSSH drops any line
        # sent with it.
        if subsystem != SFTP_SUBSYSTEM:
            self._kind = "subsystem"
            self._refusal = f"this node has no subsystem {subsystem[:64]!r}, only sftp"
        else:
            self._kind = "sftp"
            if self._node.sftp.refused:
                self._refusal = "SFTP is turned off on this node (scp -O still works)"
        return True

    def end(self, message: str) -> None:
        """End the session for the user with a last line on their terminal (stderr),
        the way the client reports it best: the line, then exit status 255 (what ssh
        gives when the server ends a connection), then the process group hung up."""
        chan = self._chan
        if chan is not None and not self._channel_closed and not chan.is_closing():
            chan.write_stderr(f"\r\nmezd: {message}\r\n".encode())
            chan.exit(255)
        if self._child is not None and self._child.returncode is None:
            self._child.hangup()

    def session_started(self) -> None:
        self._started_at = self._node.clock.now()
        self._start_task = asyncio.create_task(self._start())

    # -- starting the child ---------------------------------------------------------

    def _argv(self) -> list[str]:
        user = self._login.os_user
        if self._kind == "sftp":
            return self._sftp_argv()
        if self._kind in ("exec", "scp"):
            return [user.shell, "-c", self._command]
        return [user.shell, "-l"]

    def _sftp_argv(self) -> list[str]:
        sftp = self._node.sftp
        if sftp.program is not None:
            return [sftp.program]
        assert sftp.builtin and self._chan is not None
        version = self._chan.get_extra_info("client_version", "")
        return builtin_argv(
            self._login.os_user,
            switch_user=self._node.daemon_uid == 0,
            client_version=version if isinstance(version, str) else "",
        )

    def _switch_user(self) -> bool:
        """Whether the child is started as the user (else it runs as the daemon's
        user): the built-in SFTP server starts as root and makes itself the user, as
        the interpreter may not be the user's to run."""
        builtin = self._kind == "sftp" and self._node.sftp.builtin
        return self._node.daemon_uid == 0 and not builtin

    def _launch(self) -> Launch:
        assert self._chan is not None
        node, login = self._node, self._login
        agent_path = self._chan.get_agent_path()
        agent_socket = (
            hand_agent_socket(agent_path, login, daemon_uid=node.daemon_uid) if agent_path else None
        )
        env = session_env(
            login,
            self._chan.get_environment(),
            session_id=self.session_id,
            term=self._term[0] if self._term else None,
            agent_socket=agent_socket,
        )
        return Launch(
            argv=self._argv(),
            env=env,
            user=login.os_user,
            switch_user=self._switch_user(),
        )

    async def _start(self) -> None:
        assert self._chan is not None
        # Hold client input back (in the channel's window) until the child can take
        # it; what asyncssh delivered before this task ran is in self._pending.
        self._chan.pause_reading()
        if self._channel_closed:
            return  # e.g. OpenSSH's ssh -tt closes the channel when the PTY is refused
        if self._refusal is not None:
            self._start_failed(self._refusal)
            return
        # Before the child starts: its first output may come before spawn returns.
        self._recorder = self._open_recorder()
        try:
            launch = self._launch()
            if self._term is not None:
                assert self._node.setsid is not None
                _, term_size, term_modes = self._term
                child, _ = await Child.spawn_pty(
                    self,
                    launch,
                    setsid=self._node.setsid,
                    term_size=term_size,
                    term_modes=term_modes,
                )
            else:
                child = await Child.spawn(self, launch)
        except OSError as exc:
            self._start_failed(f"cannot start the session: {exc.strerror or exc}")
            return
        except Exception:
            logger.exception("session for %s failed to start", self._login.login)
            self._start_failed("cannot start the session: internal error")
            return
        self._child = child
        self._node.children.add(child)
        self._audit_start()
        if self._channel_closed:
            child.hangup()
            return
        for data in self._pending:
            child.write(data)
        self._pending.clear()
        if self._pending_eof:
            child.write_eof()
        if not self._input_paused:
            self._chan.resume_reading()

    def _open_recorder(self) -> SessionRecorder | None:
        """A recorder for a terminal session (a shell or a command with a PTY; never
        scp or sftp), unless the node records nothing or the certificate says not to."""
        spool, term = self._node.spool, self._term
        if spool is None or term is None or self._kind not in ("shell", "exec"):
            return None
        if not self._login.identity.record_sessions:
            return None
        term_type, (width, height, _, _), _ = term
        meta = RecordingMeta(
            session_id=self.session_id,
            user=self._login.identity.user,
            login=self._login.login,
            started=self._node.clock.now(),
            width=width if width > 0 else 80,
            height=height if height > 0 else 24,
            env={"TERM": term_type, "SHELL": self._login.os_user.shell},
        )
        done = self._node.recording_done
        loop = asyncio.get_running_loop()

        def finished(recorder: SessionRecorder) -> None:
            if done is not None and not loop.is_closed():
                loop.call_soon_threadsafe(done, recorder.session_id)

        return SessionRecorder(spool, meta, done=finished)

    def _start_failed(self, message: str) -> None:
        if self._recorder is not None:
            self._recorder.discard()
            self._recorder = None
        logger.error("session for %s failed to start: %s", self._login.login, message)
        emit_login_event(
            self._node.audit,
            "session.start",
            self._login,
            success=False,
            session_id=self.session_id,
            login_user=self._login.os_user.name,
            pty=self._term is not None,
            kind=self._kind,
            error=message,
        )
        if self._chan is not None and not self._channel_closed:
            self._chan.write_stderr(f"mezd: {message}\r\n".encode())
            self._chan.exit(1)

    def _audit_start(self) -> None:
        audit, login = self._node.audit, self._login
        self._start_audited = True
        emit_login_event(
            audit,
            "session.start",
            login,
            session_id=self.session_id,
            login_user=login.os_user.name,
            pty=self._term is not None,
            kind=self._kind,
        )
        if self._kind == "sftp":
            emit_login_event(audit, "sftp", login, session_id=self.session_id, action="start")

    # -- running --------------------------------------------------------------------

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        if self._child is not None:
            self._child.write(data)
            return
        self._pending.append(data)
        self._pending_bytes += len(data)
        if self._pending_bytes > MAX_PENDING_INPUT and self._chan is not None:
            self._chan.pause_reading()

    def eof_received(self) -> bool:
        if self._child is not None:
            self._child.write_eof()
        else:
            self._pending_eof = True
        # Keep our side open: the child's output and exit status are still to come.
        return True

    def pause_writing(self) -> None:
        if self._child is not None:
            self._child.pause_output()

    def resume_writing(self) -> None:
        if self._child is not None:
            self._child.resume_output()

    def terminal_size_changed(self, width: int, height: int, pixwidth: int, pixheight: int) -> None:
        if self._child is not None and self._term is not None:
            self._child.resize(width, height, pixwidth, pixheight)
            if self._recorder is not None:
                self._recorder.resize(width, height)

    def signal_received(self, signal: str) -> None:
        signum = CLIENT_SIGNALS.get(signal)
        if signum is None:
            logger.info("ignored unknown signal %r from client", signal[:32])
            return
        if self._child is not None:
            self._child.send_signal(signum)

    def break_received(self, msec: int) -> bool:
        return False

    # -- ChildEvents ----------------------------------------------------------------

    def child_output(self, data: bytes, *, stderr: bool) -> None:
        chan = self._chan
        if chan is None or self._channel_closed or chan.is_closing():
            return
        if stderr:
            chan.write_stderr(data)
        else:
            chan.write(data)
        if self._recorder is not None:
            self._recorder.output(data, stderr=stderr)

    def child_input_paused(self, paused: bool) -> None:
        self._input_paused = paused
        chan = self._chan
        if chan is None or self._channel_closed:
            return
        if paused:
            chan.pause_reading()
        else:
            chan.resume_reading()

    def child_done(self, returncode: int) -> None:
        if self._child is not None:
            self._node.children.discard(self._child)
        if returncode >= 0:
            self._exit_code = returncode
        else:
            self._exit_signal = _signal_name(-returncode)
        self._audit_done()
        chan = self._chan
        if chan is None or self._channel_closed or chan.is_closing():
            return
        chan.write_eof()
        if self._exit_signal is not None:
            chan.exit_with_signal(self._exit_signal)
        else:
            chan.exit(returncode)

    def _audit_done(self) -> None:
        audit, login, sid = self._node.audit, self._login, self.session_id
        code, sig = self._exit_code, self._exit_signal
        command = truncate_command(self._command)
        if self._kind == "sftp":
            emit_login_event(
                audit, "sftp", login, session_id=sid, action="end", exit_code=code, signal=sig
            )
        elif self._kind == "scp":
            mode = scp_mode(self._command)
            emit_login_event(
                audit,
                "scp",
                login,
                session_id=sid,
                command=command,
                mode=mode,
                exit_code=code,
                signal=sig,
            )
        elif self._kind == "exec":
            emit_login_event(
                audit, "exec", login, session_id=sid, command=command, exit_code=code, signal=sig
            )
        # A shell's end is the session's end, audited as such.

    def connection_lost(self, exc: Exception | None) -> None:
        self._channel_closed = True
        child = self._child
        if child is not None and child.returncode is None:
            child.hangup()
        recording: dict[str, Any] = {}  # the session.end fields naming its recording
        recorder = self._recorder
        if recorder is not None:
            recorder.close(self._node.clock.now())
            if not (recorder.failed and recorder.size == 0):  # else nothing was recorded
                recording = {"recording": self.session_id}
                if recorder.meta.truncated:
                    recording["recording_truncated"] = True
        if self._start_audited:
            emit_login_event(
                self._node.audit,
                "session.end",
                self._login,
                session_id=self.session_id,
                login_user=self._login.os_user.name,
                kind=self._kind,
                exit_code=self._exit_code,
                signal=self._exit_signal,
                duration=round(self._node.clock.now() - self._started_at, 3),
                **recording,
            )


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name.removeprefix("SIG")
    except ValueError:
        return f"SIG{signum}"
