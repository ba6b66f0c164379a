"""Uploading the spooled recordings to auth (UploadSessionRecording), one at a time, in
256 KiB chunks, resuming from what auth says it has stored, retrying with backoff while
auth is unreachable. A spooled recording is deleted only once auth answers ``complete``
(stored, hashed, acknowledged), so a restart or a crash at any point loses nothing and,
as auth answers a wrong offset with what it has, sends nothing twice."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from agent import recording_cast
from agent.recording import RecordingMeta, valid_session_id
from proto.backoff import Backoff
from proto.errors import AccessDenied, BadParameter, NotFound
from proto.failpoint import armed, failpoint

if TYPE_CHECKING:
    from proto.client import AsyncAuthClient
    from proto.v1 import auth_pb2 as pb

log = logging.getLogger(__name__)

CHUNK = 256 * 1024
ASK = -1  # the offset of a chunk that only asks how much auth has
# An upload's deadline: this much, plus a second per MiB.
UPLOAD_TIMEOUT = 30.0


def recover(directory: Path) -> list[str]:
    """The recordings a previous run left (every one finished: no session outlives
    mezd); half-written temporary files and info files with nothing left to describe
    are removed."""
    found: list[str] = []
    if not directory.is_dir():
        return found
    for entry in sorted(directory.iterdir()):
        if entry.name.endswith(".tmp"):
            entry.unlink(missing_ok=True)
            continue
        sid = entry.stem
        if entry.suffix != ".json" or not valid_session_id(sid):
            continue
        if (directory / f"{sid}.raw").exists() or (directory / f"{sid}.cast").exists():
            found.append(sid)
        else:
            entry.unlink(missing_ok=True)
    return found


async def make_cast(directory: Path, sid: str, meta: RecordingMeta) -> None:
    """``<sid>.cast`` from ``<sid>.raw``, by a process of its own (the conversion is the
    costly part of a recording; the event loop serves live sessions meanwhile), then
    the frames are removed."""
    raw = directory / f"{sid}.raw"
    if not raw.exists():
        return
    meta_path = directory / f"{sid}.json"
    if not meta.ended:  # left by a crash: it ended with its last write
        meta.ended = raw.stat().st_mtime
        await asyncio.to_thread(meta.save, meta_path)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-I", recording_cast.__file__, str(raw),
        str(directory / f"{sid}.cast"), json.dumps(meta.header()),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await proc.communicate()
    if proc.returncode != 0:
        why = err.decode(errors="replace").strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
        raise OSError(f"cannot convert recording {sid}: {why[0][:300]}")
    raw.unlink()


class RecordingUploader:
    def __init__(
        self,
        client: Callable[[], AsyncAuthClient],
        directory: Path,
        *,
        node_id: str = "",
        node_name: str = "",
        backoff: Backoff | None = None,
    ) -> None:
        self._client = client
        self.directory = directory
        self._node_id = node_id
        self._node_name = node_name
        self._backoff = backoff or Backoff(base=1.0, cap=60.0)
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self.uploaded = 0
        self.idle = asyncio.Event()

    def add(self, session_id: str) -> None:
        """A finished recording to upload (safe to call for one already queued)."""
        if session_id in self._queued or not valid_session_id(session_id):
            return
        self._queued.add(session_id)
        self.idle.clear()
        self._queue.put_nowait(session_id)

    def add_left_over(self) -> None:
        for sid in recover(self.directory):
            self.add(sid)

    async def run(self) -> None:
        while True:
            if self._queue.empty():
                self.idle.set()
            sid = await self._queue.get()
            try:
                await self._upload_until_done(sid)
            finally:
                self._queued.discard(sid)

    async def _upload_until_done(self, sid: str) -> None:
        while True:
            try:
                await self.upload(sid)
                self._backoff.reset()
                return
            except asyncio.CancelledError:
                raise
            except (BadParameter, AccessDenied, NotFound) as err:
                # Retrying what auth refuses would hold every recording behind it;
                # it stays spooled and is offered again at the next start.
                log.error("auth refused recording %s: %s", sid, err.message)
                return
            except FileNotFoundError:
                return  # already uploaded and removed, or never written
            except Exception as exc:  # grpc and transport errors alike
                delay = self._backoff.next()
                log.warning("cannot upload recording %s (%s); retrying in %.1fs", sid, exc, delay)
                await asyncio.sleep(delay)

    async def upload(self, sid: str) -> bool:
        """Upload one recording: True once auth has it whole (and the spool is removed).

        A first stream of one empty chunk at offset ASK (never a size) only asks where
        auth is: auth answers a wrong offset at once, but grpc would have sent on every
        chunk it could read meanwhile. The second stream starts there."""
        from proto.v1 import auth_pb2 as pb

        cast = self.directory / f"{sid}.cast"
        meta = RecordingMeta.load(self.directory / f"{sid}.json")
        await make_cast(self.directory, sid, meta)
        size = cast.stat().st_size
        digest = await asyncio.to_thread(_sha256, cast)
        info = pb.RecordingInfo(
            session_id=sid, node_id=self._node_id, node_name=self._node_name, user=meta.user,
            login=meta.login, started=meta.started, ended=meta.ended, size=size,
            truncated=meta.truncated,
        )  # fmt: skip
        rpc = self._client().rpc.UploadSessionRecording
        status = await rpc(_one(pb.RecordingChunk(info=info, session_id=sid, offset=ASK)))
        if not status.complete:
            if not 0 <= status.stored <= size:
                raise ConnectionError(f"auth has {status.stored} bytes of a {size}-byte recording")
            chunks = self._chunks(cast, info, status.stored, size, digest)
            status = await rpc(chunks, timeout=UPLOAD_TIMEOUT + size / (1024 * 1024))
        if not status.complete:
            raise ConnectionError(f"auth kept {status.stored} of {size} bytes and no more")
        cast.unlink(missing_ok=True)
        (self.directory / f"{sid}.json").unlink(missing_ok=True)
        self.uploaded += 1
        log.info("recording %s uploaded (%d bytes)", sid, size)
        return True

    async def _chunks(
        self, cast: Path, info: pb.RecordingInfo, start: int, size: int, digest: str
    ) -> AsyncIterator[pb.RecordingChunk]:
        from proto.v1 import auth_pb2 as pb

        f = await asyncio.to_thread(open, cast, "rb")
        with f:
            f.seek(start)
            offset = start
            while True:
                data = await asyncio.to_thread(f.read, min(CHUNK, size - offset))
                last = offset + len(data) >= size or not data
                chunk = pb.RecordingChunk(
                    offset=offset, data=data, last=last, session_id=info.session_id
                )
                if offset == start:
                    chunk.info.CopyFrom(info)
                if last:
                    chunk.sha256 = digest
                if offset - start >= 2 * CHUNK and armed("recording.uploading"):
                    # Tests: mezd killed mid-upload, once auth holds what was sent (a
                    # kill with chunks still in grpc's buffers would test nothing).
                    await self._stored_at_least(info, offset)
                    failpoint("recording.uploading")
                yield chunk
                offset += len(data)
                if last:
                    return

    async def _stored_at_least(self, info: pb.RecordingInfo, size: int) -> None:
        from proto.v1 import auth_pb2 as pb

        rpc = self._client().rpc.UploadSessionRecording
        ask = pb.RecordingChunk(info=info, session_id=info.session_id, offset=ASK)
        for _ in range(200):
            if (await rpc(_one(ask))).stored >= size:
                return
            await asyncio.sleep(0.05)


async def _one(chunk: pb.RecordingChunk) -> AsyncIterator[pb.RecordingChunk]:
    yield chunk


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1024 * 1024):
            h.update(block)
    return h.hexdigest()
