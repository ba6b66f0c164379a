"""mezd's recording uploader against a real auth server: a spooled recording is
converted, uploaded in chunks and removed only once auth has it whole; an upload cut
short resumes from what auth says it has (nothing sent twice); one auth refuses stays
spooled."""

from __future__ import annotations

import asyncio
import hashlib
import io
import uuid
from pathlib import Path

from agent.identity import NodeIdentity
from agent.recording import RecordingMeta, SessionRecorder, Spool
from agent.recording_cast import convert
from agent.recording_upload import ASK, CHUNK, RecordingUploader
from proto.backoff import Backoff
from proto.client import AsyncAuthClient
from proto.v1 import auth_pb2 as pb
from tests.integration.test_nodes import join_node
from tests.servers import RunningAuth


def record(spool: Spool, lines: int) -> tuple[str, bytes]:
    """A finished recording in the spool, and the cast it makes."""
    meta = RecordingMeta(
        session_id=str(uuid.uuid4()), user="alice", login="ubuntu", started=1.8e9,
        env={"TERM": "xterm", "SHELL": "/bin/sh"},
    )  # fmt: skip
    recorder = SessionRecorder(spool, meta)
    for i in range(lines):
        recorder.output(f"line {i} \u00e9\u20ac\r\n".encode())
    recorder.close(1.8e9 + 60)
    assert spool.wait_idle(10)
    out = io.BytesIO()
    with open(spool.raw_path(meta.session_id), "rb") as raw:
        convert(raw, out, meta.header())
    return meta.session_id, out.getvalue()


def stored(auth: RunningAuth, sid: str) -> tuple[pb.RecordingInfo, bytes]:
    with auth.admin() as admin:
        replies = list(admin.rpc.GetSessionRecording(pb.GetSessionRecordingRequest(session_id=sid)))
    return replies[0].info, b"".join(r.data for r in replies[1:])


class Sent:
    """Counts what goes over the wire, by wrapping the client's stub method."""

    def __init__(self, client: AsyncAuthClient) -> None:
        self.streams: list[int] = []  # first offset of each stream
        self.bytes = 0
        method = client.rpc.UploadSessionRecording

        def counting(chunks: object, **kwargs: object) -> object:
            async def tap() -> object:
                first = True
                async for chunk in chunks:  # type: ignore[attr-defined]
                    if first:
                        self.streams.append(chunk.offset)
                        first = False
                    self.bytes += len(chunk.data)
                    yield chunk

            return method(tap(), **kwargs)  # type: ignore[call-arg]

        client.rpc.UploadSessionRecording = counting  # type: ignore[method-assign,assignment]


async def run_until_idle(uploader: RecordingUploader) -> None:
    task = asyncio.create_task(uploader.run())
    try:
        await asyncio.sleep(0)
        await asyncio.wait_for(uploader.idle.wait(), 30)
    finally:
        task.cancel()


def node_client(node: NodeIdentity) -> AsyncAuthClient:
    return AsyncAuthClient(node.auth_server, node.tls_ca_pem.encode(), node.client_identity())


def test_upload_resumes_and_removes_the_spool_once_complete(
    auth: RunningAuth, tmp_path: Path
) -> None:
    node = join_node(auth, tmp_path / "node", "web-1")
    spool = Spool(tmp_path / "node" / "recordings")
    spool.ensure_directory()
    sid, cast = record(spool, 40_000)
    assert len(cast) > 3 * CHUNK
    try:
        sent = asyncio.run(resume(node, spool, sid, cast))
    finally:
        spool.shut_down()
    # The first stream asked and was told 2 chunks are there; the second sent the
    # rest, once.
    assert sent.streams == [ASK, 2 * CHUNK]
    assert sent.bytes == len(cast) - 2 * CHUNK
    assert list(spool.directory.iterdir()) == []
    info, data = stored(auth, sid)
    assert data == cast and info.complete and info.node_name == "web-1"
    assert info.sha256 == hashlib.sha256(cast).hexdigest()
    assert (info.user, info.login, info.ended, info.truncated) == (
        "alice", "ubuntu", 1.8e9 + 60, False,
    )  # fmt: skip


async def resume(node: NodeIdentity, spool: Spool, sid: str, cast: bytes) -> Sent:
    client = node_client(node)
    try:
        # A first upload of two chunks, cut off before the rest (as mezd killed mid-way).
        head = [
            pb.RecordingChunk(info=pb.RecordingInfo(session_id=sid, user="alice", login="ubuntu",
                              started=1.8e9, ended=1.8e9 + 60), offset=0,
                              data=cast[:CHUNK], session_id=sid),
            pb.RecordingChunk(offset=CHUNK, data=cast[CHUNK : 2 * CHUNK], session_id=sid),
        ]  # fmt: skip

        async def cut() -> object:
            for chunk in head:
                yield chunk

        status = await client.rpc.UploadSessionRecording(cut())
        assert (status.stored, status.complete) == (2 * CHUNK, False)

        sent = Sent(client)
        uploader = RecordingUploader(lambda: client, spool.directory, backoff=Backoff(0.05, 0.1))
        uploader.add_left_over()  # as at mezd's start
        await run_until_idle(uploader)
        assert uploader.uploaded == 1
        return sent
    finally:
        await client.close()


def test_refused_recording_stays_spooled(auth: RunningAuth, tmp_path: Path) -> None:
    first = join_node(auth, tmp_path / "n1", "web-1")
    other = join_node(auth, tmp_path / "n2", "web-2")
    spool = Spool(tmp_path / "n2" / "recordings")
    spool.ensure_directory()
    sid, _ = record(spool, 10)
    try:
        asyncio.run(refused(first, other, spool, sid))
    finally:
        spool.shut_down()
    assert sorted(p.suffix for p in spool.directory.iterdir()) == [".cast", ".json"]


async def refused(first: NodeIdentity, other: NodeIdentity, spool: Spool, sid: str) -> None:
    first_client, other_client = node_client(first), node_client(other)
    try:
        # web-1 claimed the session id first (one chunk, no more).
        async def claim() -> object:
            yield pb.RecordingChunk(
                info=pb.RecordingInfo(session_id=sid, user="alice"), session_id=sid, data=b"{"
            )

        await first_client.rpc.UploadSessionRecording(claim())
        uploader = RecordingUploader(lambda: other_client, spool.directory)
        uploader.add(sid)
        await run_until_idle(uploader)
        assert uploader.uploaded == 0
    finally:
        await first_client.close()
        await other_client.close()
