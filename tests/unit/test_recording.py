"""The session recorder and the conversion of its frames to asciicast v2: as asciinema
writes it, bounded, and never in the way of its session (the disk is a test double
where it has to fail)."""

from __future__ import annotations

import asyncio
import errno
import io
import json
import stat
import subprocess
import sys
import uuid
from pathlib import Path
from typing import IO, Any

import pytest

from agent import recording_cast
from agent.recording import FLUSH_SECONDS, RecordingMeta, SessionRecorder, Spool, valid_session_id
from agent.recording_cast import OUTPUT, convert, frame
from agent.recording_upload import recover


class Ticks:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FullDisk:
    """A spool file that takes ``room`` bytes and then fails as a full disk does."""

    def __init__(self, room: int) -> None:
        self.room = room
        self.written = b""
        self.closed = False

    def write(self, data: bytes) -> int:
        if len(self.written) + len(data) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.written += data
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def start(spool: Spool, ticks: Ticks, done: list[str] | None = None) -> SessionRecorder:
    meta = RecordingMeta(
        session_id=str(uuid.uuid4()),
        user="alice",
        login="alice",
        started=1e9,
        width=100,
        height=30,
        env={"TERM": "xterm-256color", "SHELL": "/bin/bash"},
    )
    return SessionRecorder(
        spool,
        meta,
        done=(lambda r: done.append(r.session_id)) if done is not None else None,
        monotonic=ticks,
    )


def as_cast(raw: bytes, meta: RecordingMeta) -> list[Any]:
    out = io.BytesIO()
    convert(io.BytesIO(raw), out, meta.header())
    return [json.loads(line) for line in out.getvalue().decode().splitlines()]


def finish(spool: Spool, recorder: SessionRecorder) -> list[Any]:
    recorder.close(1e9 + 5)
    assert spool.wait_idle(5)
    return as_cast(spool.raw_path(recorder.session_id).read_bytes(), recorder.meta)


@pytest.fixture
def spool(tmp_path: Path) -> Any:
    s = Spool(tmp_path / "recordings")
    s.ensure_directory()
    yield s
    s.shut_down()


def test_header_output_and_resizes(spool: Spool) -> None:
    ticks, done = Ticks(), []  # type: list[str]
    recorder = start(spool, ticks, done)
    ticks.now += 0.5
    recorder.output(b"hello ")
    ticks.now += 1.0
    recorder.resize(120, 40)
    ticks.now += 0.25
    recorder.output(b"world\r\n")
    header, *events = finish(spool, recorder)
    assert header == {
        "version": 2,
        "width": 100,
        "height": 30,
        "timestamp": 1000000000,
        "env": {"TERM": "xterm-256color", "SHELL": "/bin/bash"},
    }
    assert events == [[0.5, "o", "hello "], [1.5, "r", "120x40"], [1.75, "o", "world\r\n"]]
    assert done == [recorder.session_id]
    meta = RecordingMeta.load(spool.meta_path(recorder.session_id))
    assert (meta.ended, meta.truncated, meta.user, meta.width) == (1e9 + 5, False, "alice", 100)


def test_utf8_split_across_chunks_and_invalid_bytes(spool: Spool) -> None:
    ticks = Ticks()
    recorder = start(spool, ticks)
    euro = "€".encode()  # three bytes
    for i, piece in enumerate([b"a" + euro[:1], euro[1:2], euro[2:] + b"\xff" + b"z", b"\xe2\x82"]):
        ticks.now += 1.0 + i
        recorder.output(piece)
    _, *events = finish(spool, recorder)
    text = "".join(e[2] for e in events if e[1] == "o")
    # The split character whole, the bad byte and the cut-off tail as U+FFFD.
    assert text == "a€\ufffdz\ufffd"
    assert all(e[2] for e in events)  # no empty events for chunks that ended mid-character


async def test_output_is_batched_and_merged_on_the_loop(spool: Spool) -> None:
    ticks = Ticks()
    recorder = start(spool, ticks)
    for _ in range(100):
        recorder.output(b"x")
    ticks.now += 1.0
    recorder.output(b"y")
    await asyncio.sleep(FLUSH_SECONDS * 4)  # handed over by the timer, not by close
    assert spool.wait_idle(0) is False  # still open
    assert spool.raw_path(recorder.session_id).stat().st_size > 0
    _, *events = finish(spool, recorder)
    assert events == [[0.0, "o", "x" * 100], [1.0, "o", "y"]]


def test_cap_stops_with_a_marker(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "r", max_bytes=2000)
    spool.ensure_directory()
    ticks = Ticks()
    recorder = start(spool, ticks)
    for i in range(100):
        ticks.now += 1
        recorder.output(f"line {i} ".encode() * 5)
    events = finish(spool, recorder)
    spool.shut_down()
    assert events[-1][1] == "m" and "truncated" in events[-1][2]
    assert [e[1] for e in events[1:-1]] == ["o"] * (len(events) - 2)
    assert 1900 < recorder.size - len(events[-1][2]) - 13 <= 2000
    assert recorder.meta.truncated
    assert RecordingMeta.load(spool.meta_path(recorder.session_id)).truncated


def test_full_disk_stops_the_recording_not_the_session(tmp_path: Path) -> None:
    disk = FullDisk(room=500)

    def opener(path: Path) -> IO[bytes]:
        return disk  # type: ignore[return-value]

    spool = Spool(tmp_path / "r", opener=opener)
    spool.ensure_directory()
    ticks, done = Ticks(), []  # type: list[str]
    recorder = start(spool, ticks, done)
    for _ in range(200):
        ticks.now += 1
        recorder.output(b"y" * 50)  # returns at once whatever the disk does
    recorder.resize(10, 10)
    recorder.close(1e9 + 1)
    assert spool.wait_idle(5)
    spool.shut_down()
    assert recorder.failed and recorder.stopped and recorder.meta.truncated
    assert disk.closed and done == [recorder.session_id]
    assert 0 < len(disk.written) <= 500
    assert as_cast(disk.written, recorder.meta)[1][2] == "y" * 50  # what got in is whole
    assert RecordingMeta.load(spool.meta_path(recorder.session_id)).truncated


def test_unopenable_spool_is_no_recording(tmp_path: Path) -> None:
    def opener(path: Path) -> IO[bytes]:
        raise OSError(errno.EACCES, "Permission denied")

    spool = Spool(tmp_path / "r", opener=opener)
    spool.ensure_directory()
    done: list[str] = []
    recorder = start(spool, Ticks(), done)
    recorder.output(b"x")
    recorder.close(1e9)
    assert spool.wait_idle(5)
    spool.shut_down()
    assert recorder.failed and done == [recorder.session_id]
    assert recover(spool.directory) == []  # its stray info file is cleaned up
    assert list(spool.directory.iterdir()) == []


def test_private_files(spool: Spool) -> None:
    recorder = start(spool, Ticks())
    finish(spool, recorder)
    assert stat.S_IMODE(spool.directory.stat().st_mode) == 0o700
    for path in (spool.raw_path(recorder.session_id), spool.meta_path(recorder.session_id)):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_converter_process_and_a_frame_cut_by_a_crash(tmp_path: Path) -> None:
    raw, cast = tmp_path / "a.raw", tmp_path / "a.cast"
    cut = frame(2.0, OUTPUT, b"never seen")
    raw.write_bytes(frame(0.5, OUTPUT, "caf\u00e9".encode()) + cut[:-3])
    header = {"version": 2, "width": 80, "height": 24, "timestamp": 1, "env": {}}
    subprocess.run(
        [sys.executable, "-I", recording_cast.__file__, str(raw), str(cast), json.dumps(header)],
        check=True,
    )
    lines = [json.loads(line) for line in cast.read_text().splitlines()]
    assert lines == [header, [0.5, "o", "café"]]
    assert stat.S_IMODE(cast.stat().st_mode) == 0o600


def test_recover_what_a_crash_left(spool: Spool) -> None:
    sid, gone = str(uuid.uuid4()), str(uuid.uuid4())
    for s in (sid, gone):
        RecordingMeta(session_id=s, user="u", login="u", started=1.0).save(spool.meta_path(s))
    spool.raw_path(sid).write_bytes(frame(0.1, OUTPUT, b"ab"))
    (spool.directory / f"{sid}.cast.tmp").write_bytes(b"half")
    (spool.directory / "not-a-uuid.json").write_bytes(b"{}")
    assert recover(spool.directory) == [sid]
    assert sorted(p.name for p in spool.directory.iterdir()) == sorted(
        [f"{sid}.raw", f"{sid}.json", "not-a-uuid.json"]
    )


def test_session_ids(spool: Spool) -> None:
    sid = str(uuid.uuid4())
    assert valid_session_id(sid)
    for bad in ("../" + sid, sid.upper(), sid + "/", "", sid.replace("-", "")):
        assert not valid_session_id(bad)
        with pytest.raises(ValueError):
            spool.cast_path(bad)


def test_a_start_makes_no_spool_directory_until_a_first_recording(tmp_path: Path) -> None:
    """A mezd start that fails (a busy port) must leave the data dir as it was."""
    spool = Spool(tmp_path / "recordings", 1024)
    spool.prepare()
    assert not spool.directory.exists()
    spool.ensure_directory()
    assert stat.S_IMODE(spool.directory.stat().st_mode) == 0o700
    spool.directory.chmod(0o755)
    spool.prepare()  # an existing one is made private again
    assert stat.S_IMODE(spool.directory.stat().st_mode) == 0o700
    spool.shut_down()
