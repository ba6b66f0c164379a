"""Session recordings on the node, spooled under its data dir.

A ``SessionRecorder`` takes a PTY session's output and resizes on the event loop and
does nothing there but append them to a list, handed in batches to the spool's writer
thread, which appends them as raw frames (agent/recording_cast.py) to
``<session_id>.raw``. The session never waits for the disk, and pays for no decoding or
JSON: the asciicast v2 file, ``<session_id>.cast``, is made from the frames after the
session, by a process of its own (see agent/recording_upload.py). A full disk or any
write error ends the recording (logged once), never the session; so does the cap. Input
is not recorded (passwords typed at no-echo prompts would be in it).

``<session_id>.json`` holds the RecordingInfo fields and the cast's header (``ended`` is
0 while the session runs). Every file is 0600 in a 0700 directory."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from agent.recording_cast import FRAME, MARKER, OUTPUT, RESIZE, STDERR, frame

log = logging.getLogger(__name__)

RECORDINGS_DIR = "recordings"
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
# Output the writer has not caught up with, held in memory; past it the recording stops
# (a disk slower than the session must not grow the daemon without bound).
MAX_PENDING_BYTES = 16 * 1024 * 1024
# How long output waits on the event loop before the writer gets it, and how much:
# waking a thread for each PTY read would cost the session more than the recording.
FLUSH_SECONDS = 0.05
FLUSH_BYTES = 1024 * 1024


def valid_session_id(name: str) -> bool:
    """Whether ``name`` is a UUID in its canonical form (the only names the spool uses)."""
    try:
        return str(uuid.UUID(name)) == name
    except ValueError:
        return False


@dataclass
class RecordingMeta:
    """What ``<session_id>.json`` holds: RecordingInfo's fields known to the node, and
    the terminal the cast's header describes."""

    session_id: str
    user: str
    login: str
    started: float
    ended: float = 0.0
    truncated: bool = False
    width: int = 80
    height: int = 24
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> RecordingMeta:
        raw = json.loads(path.read_text())
        return cls(
            session_id=str(raw["session_id"]),
            user=str(raw["user"]),
            login=str(raw["login"]),
            started=float(raw["started"]),
            ended=float(raw.get("ended", 0.0)),
            truncated=bool(raw.get("truncated", False)),
            width=int(raw.get("width", 80)),
            height=int(raw.get("height", 24)),
            env={str(k): str(v) for k, v in dict(raw.get("env", {})).items()},
        )

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        with open_private(tmp, exclusive=False) as out:
            out.write(json.dumps(asdict(self)).encode())
        tmp.replace(path)

    def header(self) -> dict[str, Any]:
        """The asciicast v2 header line."""
        return {
            "version": 2,
            "width": self.width,
            "height": self.height,
            "timestamp": int(self.started),
            "env": self.env,
        }


def open_private(path: Path, *, exclusive: bool = True) -> IO[bytes]:
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    return os.fdopen(os.open(path, flags | os.O_CLOEXEC, 0o600), "wb")


class Spool:
    """The node's recordings directory and the one thread that writes into it."""

    def __init__(
        self,
        directory: Path,
        max_bytes: int = DEFAULT_MAX_BYTES,
        *,
        opener: Callable[[Path], IO[bytes]] = open_private,
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._opener = opener
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recording")
        self._open = 0
        self._idle = threading.Condition()

    def prepare(self) -> None:
        """Make sure nobody else can read the directory, if there is one: it is made at
        the first recording (a start that fails changes nothing in the data dir)."""
        if self.directory.is_dir():
            os.chmod(self.directory, 0o700)

    def ensure_directory(self) -> None:
        """Create the directory (0700): on the writer thread, before a first recording."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)

    def path(self, session_id: str, suffix: str) -> Path:
        if not valid_session_id(session_id):
            raise ValueError(f"not a session id: {session_id[:64]!r}")
        return self.directory / f"{session_id}{suffix}"

    def raw_path(self, session_id: str) -> Path:
        return self.path(session_id, ".raw")

    def cast_path(self, session_id: str) -> Path:
        return self.path(session_id, ".cast")

    def meta_path(self, session_id: str) -> Path:
        return self.path(session_id, ".json")

    def open_file(self, path: Path) -> IO[bytes]:
        return self._opener(path)

    def submit(self, fn: Callable[[], None]) -> None:
        self._writer.submit(fn)

    def opened(self) -> None:
        with self._idle:
            self._open += 1

    def closed(self) -> None:
        with self._idle:
            self._open -= 1
            self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Block until every recorder has closed its file (True) or ``timeout`` passed."""
        with self._idle:
            return self._idle.wait_for(lambda: self._open == 0, timeout)

    def shut_down(self) -> None:
        self._writer.shutdown(wait=True)


_Item = tuple[float, bytes, bytes]  # (seconds since the start, frame kind, payload)


class SessionRecorder:
    """One PTY session's recording. Every public method returns at once."""

    def __init__(
        self,
        spool: Spool,
        meta: RecordingMeta,
        *,
        done: Callable[[SessionRecorder], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spool = spool
        self.meta = meta
        self.session_id = meta.session_id
        self._done = done
        self._monotonic = monotonic
        self._start = monotonic()
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None  # then every event is handed over at once
        self._timer: asyncio.TimerHandle | None = None
        self._items: list[_Item] = []
        self._batch_bytes = 0
        self._lock = threading.Lock()
        self._unwritten = 0  # bytes handed to the writer and not yet written
        self._closing = False
        self._discarded = False
        self.stopped = False  # no more events are taken (cap, error, or closed)
        self.failed = False  # a write failed: the file may lack its tail
        self._file: IO[bytes] | None = None
        self.size = 0
        spool.opened()
        spool.submit(self._open)

    # -- the session's side (event loop) ---------------------------------------------

    def output(self, data: bytes, *, stderr: bool = False) -> None:
        self._take(self._monotonic() - self._start, STDERR if stderr else OUTPUT, data)

    def resize(self, width: int, height: int) -> None:
        self._take(self._monotonic() - self._start, RESIZE, f"{width}x{height}".encode())

    def close(self, ended: float) -> None:
        """The session ended: write what is left, then the info, then tell ``done``."""
        if self._closing:
            return
        self._closing = True
        self.meta.ended = ended
        self._hand_over()
        self.spool.submit(self._finish)

    def discard(self) -> None:
        """The session never started: remove what was written, tell nobody."""
        self._done = None
        self._discarded = True
        self.close(0.0)

    def _take(self, at: float, kind: bytes, payload: bytes) -> None:
        if self.stopped or self._closing:
            return
        self._items.append((at, kind, payload))
        self._batch_bytes += len(payload) + FRAME.size
        if self._loop is None or self._batch_bytes >= FLUSH_BYTES:
            self._hand_over()
        elif self._timer is None:
            self._timer = self._loop.call_later(FLUSH_SECONDS, self._hand_over)

    def _hand_over(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._items:
            return
        items, size = self._items, self._batch_bytes
        self._items, self._batch_bytes = [], 0
        with self._lock:
            self._unwritten += size
            overflow = self._unwritten > MAX_PENDING_BYTES
        if overflow:
            self.stopped = True
        self.spool.submit(lambda: self._write_batch(items, size, overflow))

    # -- the writer thread -----------------------------------------------------------

    def _open(self) -> None:
        try:
            self.spool.ensure_directory()
            self.meta.save(self.spool.meta_path(self.session_id))
            self._file = self.spool.open_file(self.spool.raw_path(self.session_id))
        except OSError as exc:
            self._fail(exc)

    def _write_batch(self, items: list[_Item], size: int, overflow: bool) -> None:
        try:
            if self._file is None or self.failed or self.meta.truncated:
                return
            room = self.spool.max_bytes - self.size
            data = b"".join(frame(at, kind, payload) for at, kind, payload in items)
            if len(data) > room:
                cut = 0
                for _, _, payload in items:
                    if cut + FRAME.size + len(payload) > room:
                        break
                    cut += FRAME.size + len(payload)
                self._write(data[:cut])
                self._truncate(f"the recording reached its cap of {self.spool.max_bytes} bytes")
                return
            self._write(data)
            if overflow:
                self._truncate("the disk did not keep up with the session's output")
        finally:
            with self._lock:
                self._unwritten -= size

    def _truncate(self, why: str) -> None:
        self.stopped = True
        self.meta.truncated = True
        log.warning("recording of session %s stopped: %s", self.session_id, why)
        at = self._monotonic() - self._start
        self._write(frame(at, MARKER, f"recording truncated: {why}".encode()))

    def _write(self, data: bytes) -> None:
        if self._file is None or self.failed or not data:
            return
        try:
            self._file.write(data)
            self._file.flush()
        except OSError as exc:
            self._fail(exc)
            return
        self.size += len(data)

    def _fail(self, exc: OSError) -> None:
        self.stopped = True
        self.failed = True
        self.meta.truncated = True
        log.error("recording of session %s stopped: %s", self.session_id, exc.strerror or exc)

    def _finish(self) -> None:
        try:
            if self._file is not None:
                with contextlib.suppress(OSError):
                    self._file.close()
            if self._discarded:
                for path in (
                    self.spool.raw_path(self.session_id),
                    self.spool.meta_path(self.session_id),
                ):
                    with contextlib.suppress(OSError):
                        path.unlink(missing_ok=True)
            elif self._file is not None:
                try:
                    self.meta.save(self.spool.meta_path(self.session_id))
                except OSError as exc:
                    log.error("recording of session %s: cannot save its info: %s",
                              self.session_id, exc.strerror or exc)  # fmt: skip
        finally:
            self.stopped = True
            self.spool.closed()
            if self._done is not None:
                self._done(self)
