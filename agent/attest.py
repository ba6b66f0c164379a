"""Who is on the other end of a unix socket, by the kernel's word only: SO_PEERCRED gives
the pid, uid and gid of the process that connected; /proc gives its executable; the
password database gives its user name. Nothing the caller sends counts.

A pid is only a number, and numbers are reused: the process that connected may have
exited and its pid gone to another by the time /proc is read. So the process is pinned
first (SO_PEERPIDFD, which names the connecting process itself, where the kernel has it;
else ``pidfd_open`` of the pid), /proc is read, and then it is checked again that the
same process is still alive: the pidfd not signalled (a pid cannot be reused while its
process lives), the start time in /proc/PID/stat unchanged and not after the call began,
and the uid and gid in /proc/PID/status still those SO_PEERCRED gave. Any doubt refuses.
"""

from __future__ import annotations

import contextlib
import os
import platform
import pwd
import select
import socket
import struct
import time
from dataclasses import dataclass
from pathlib import Path

from proto.errors import AccessDenied

PROC = Path("/proc")
# SO_PEERPIDFD (Linux 6.5) is 77 in asm-generic; Python 3.11 does not name it.
_PEERPIDFD_MACHINES = frozenset({"x86_64", "aarch64", "riscv64", "i686", "armv7l"})
SO_PEERPIDFD: int | None = getattr(socket, "SO_PEERPIDFD", None) or (
    77 if platform.machine() in _PEERPIDFD_MACHINES else None
)


@dataclass(frozen=True)
class Facts:
    """What the kernel says about a process; (uid, gid, user, exe) is what rules match."""

    pid: int
    uid: int
    gid: int
    user: str
    exe: str

    @property
    def key(self) -> tuple[int, int, str, str]:
        return (self.uid, self.gid, self.user, self.exe)


@dataclass(frozen=True)
class ProcState:
    """One reading of /proc/PID: its start time (clock ticks after boot) and ids."""

    start_ticks: int
    uids: tuple[int, ...]  # real, effective, saved, filesystem
    gids: tuple[int, ...]


class NotAttested(AccessDenied):
    """The kernel did not vouch for the caller (gone, changed, or unreadable)."""


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process that connected ``sock``."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return pid, uid, gid


def peer_pidfd(sock: socket.socket) -> int | None:
    """A pidfd for the very process that connected (SO_PEERPIDFD), or None where the
    kernel (or platform) has no such option."""
    if SO_PEERPIDFD is None:
        return None
    try:
        return sock.getsockopt(socket.SOL_SOCKET, SO_PEERPIDFD)
    except OSError:
        return None


def read_state(pid: int, proc: Path = PROC) -> ProcState:
    stat = (proc / str(pid) / "stat").read_text()
    # comm (field 2) is in parentheses and may hold anything: split after the last ')'.
    after = stat[stat.rindex(")") + 2 :].split()
    start_ticks = int(after[19])  # field 22; ``after`` starts at field 3 (state)
    uids: tuple[int, ...] = ()
    gids: tuple[int, ...] = ()
    for line in (proc / str(pid) / "status").read_text().splitlines():
        if line.startswith("Uid:"):
            uids = tuple(int(v) for v in line.split()[1:])
        elif line.startswith("Gid:"):
            gids = tuple(int(v) for v in line.split()[1:])
    if len(uids) != 4 or len(gids) != 4:
        raise NotAttested(f"process {pid}: no Uid/Gid in /proc")
    return ProcState(start_ticks, uids, gids)


def check_same(
    before: ProcState, after: ProcState, uid: int, gid: int, *, began_ticks: int | None = None
) -> None:
    """Refuse unless two readings are of one process that still has the peer's ids and
    (when ``began_ticks`` is given) started no later than the call began."""
    if before.start_ticks != after.start_ticks:
        raise NotAttested("the process changed while it was looked at (pid reused)")
    if began_ticks is not None and after.start_ticks > began_ticks:
        raise NotAttested("the process started after the connection (pid reused)")
    for state in (before, after):
        if state.uids[1] != uid or state.gids[1] != gid:
            raise NotAttested("the process's uid or gid is not the one it connected with")


def exited(pidfd: int) -> bool:
    """A pidfd polls readable once its process has exited."""
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return bool(poller.poll(0))


def boot_ticks() -> int:
    """Now, in the clock ticks since boot that /proc/PID/stat's start time counts."""
    return int(time.clock_gettime(time.CLOCK_BOOTTIME) * os.sysconf("SC_CLK_TCK")) + 1


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return ""


def attest(
    pid: int, uid: int, gid: int, *, pidfd: int | None = None, began_ticks: int | None = None,
    proc: Path = PROC,
) -> Facts:  # fmt: skip
    """The facts of process ``pid`` which SO_PEERCRED reported with ``uid`` and ``gid``.
    ``pidfd``, when given, pins the connecting process (SO_PEERPIDFD) and stays the
    caller's; otherwise one is opened here (and closed)."""
    if pid <= 0:
        raise NotAttested("the kernel named no process for this connection")
    owned = pidfd is None
    if pidfd is None:
        try:
            pidfd = os.pidfd_open(pid)
        except OSError as exc:  # ProcessLookupError: it is gone already
            raise NotAttested(f"process {pid} is gone") from exc
    try:
        try:
            before = read_state(pid, proc)
            exe = os.readlink(proc / str(pid) / "exe")
            after = read_state(pid, proc)
        except (OSError, ValueError, IndexError) as exc:
            raise NotAttested(f"process {pid} cannot be read in /proc") from exc
        if exited(pidfd):
            raise NotAttested(f"process {pid} exited")
        check_same(before, after, uid, gid, began_ticks=began_ticks)
    finally:
        if owned:
            with contextlib.suppress(OSError):
                os.close(pidfd)
    if not exe.startswith("/"):
        raise NotAttested(f"process {pid} has no executable path")
    return Facts(pid=pid, uid=uid, gid=gid, user=user_name(uid), exe=exe)


def attest_socket(sock: socket.socket, began_ticks: int | None = None) -> Facts:
    """The facts of the process that connected ``sock``."""
    try:
        pid, uid, gid = peer_credentials(sock)
    except OSError as exc:
        raise NotAttested("the kernel gave no peer credentials") from exc
    pidfd = peer_pidfd(sock)
    try:
        return attest(pid, uid, gid, pidfd=pidfd, began_ticks=began_ticks)
    finally:
        if pidfd is not None:
            os.close(pidfd)
