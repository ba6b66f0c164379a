"""Session recordings kept by auth, against a real auth server: a node uploads (resumably,
in chunks, hashed), users list and play their own, admins and auditors any; another
node's upload, a path-like id, a wrong hash and another user's playback are refused and
change nothing. On PostgreSQL, a recording stored through one server's store is read
through another's."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from proto.errors import AccessDenied, BadParameter, CompareFailed, MeziteError, NotFound
from proto.v1 import auth_pb2 as pb
from tests.integration.conftest import PASSWORD, add_user, audit_events, login
from tests.integration.test_nodes import join_node
from tests.servers import RunningAuth

CAST = b'{"version": 2, "width": 80, "height": 24, "timestamp": 1800000000}\n' + b"".join(
    f'[{i / 10:.1f}, "o", "line {i}\\r\\n"]\n'.encode() for i in range(3000)
)


def chunks(session_id: str, data: bytes, offset: int = 0, size: int = 64 * 1024,
           user: str = "alice", sha: str | None = None) -> Iterator[pb.RecordingChunk]:  # fmt: skip
    info = pb.RecordingInfo(session_id=session_id, user=user, login="ubuntu",
                            started=1_800_000_000.0, ended=1_800_000_300.0)  # fmt: skip
    pieces = [data[i : i + size] for i in range(offset, len(data), size)] or [b""]
    for n, piece in enumerate(pieces):
        last = n == len(pieces) - 1
        yield pb.RecordingChunk(
            info=info if n == 0 else None, session_id=session_id,
            offset=offset + n * size, data=piece, last=last,
            sha256=(sha or hashlib.sha256(data).hexdigest()) if last else "",
        )  # fmt: skip


def upload(
    node: object, auth: RunningAuth, stream: Iterator[pb.RecordingChunk]
) -> pb.RecordingUploadStatus:
    with auth.client(node.client_identity()) as client:  # type: ignore[attr-defined]
        return client.rpc.UploadSessionRecording(stream)


def play(client: object, session_id: str) -> tuple[pb.RecordingInfo, bytes]:
    replies = list(client.rpc.GetSessionRecording(pb.GetSessionRecordingRequest(  # type: ignore[attr-defined]
        session_id=session_id)))  # fmt: skip
    return replies[0].info, b"".join(r.data for r in replies[1:])


def test_a_node_uploads_resumably_and_users_play_their_own(
    auth: RunningAuth, tmp_path: Path
) -> None:
    node = join_node(auth, tmp_path / "n1", "web-1")
    sid = str(uuid.uuid4())
    half = len(CAST) // 2
    # The first upload dies after half the file (its stream ends without the last chunk).
    partial = [c for c in chunks(sid, CAST) if c.offset < half and not c.last]
    assert upload(node, auth, iter(partial)).complete is False
    stored = upload(node, auth, chunks(sid, CAST))  # starts again from 0: told where to resume
    assert (stored.stored, stored.complete) == (partial[-1].offset + len(partial[-1].data), False)
    done = upload(node, auth, chunks(sid, CAST, offset=stored.stored))
    assert (done.stored, done.complete) == (len(CAST), True)
    assert upload(node, auth, chunks(sid, CAST)).complete  # again: already complete
    add_user(auth, "alice")
    add_user(auth, "bob")
    with login(auth, "alice") as alice:
        (listed,) = alice.rpc.ListSessionRecordings(pb.ListSessionRecordingsRequest()).recordings
        assert (listed.session_id, listed.node_name, listed.size) == (sid, "web-1", len(CAST))
        info, data = play(alice, sid)
        assert data == CAST and info.sha256 == hashlib.sha256(CAST).hexdigest()
    with login(auth, "bob") as bob:
        assert (
            list(bob.rpc.ListSessionRecordings(pb.ListSessionRecordingsRequest()).recordings) == []
        )
        with pytest.raises(NotFound):
            play(bob, sid)
    with auth.admin() as admin:
        assert play(admin, sid)[1] == CAST
    (event,) = audit_events(auth, "session.recording")
    fields = json.loads(event.fields_json)
    assert (fields["size"], fields["sha256"], fields["duration"]) == (
        len(CAST), hashlib.sha256(CAST).hexdigest(), 300.0,
    )  # fmt: skip


def test_refused_uploads_change_nothing(auth: RunningAuth, tmp_path: Path) -> None:
    first = join_node(auth, tmp_path / "n1", "web-1")
    other = join_node(auth, tmp_path / "n2", "web-2")
    sid = str(uuid.uuid4())
    upload(first, auth, iter(list(chunks(sid, CAST))[:1]))
    with pytest.raises(AccessDenied, match="another node"):
        upload(other, auth, chunks(sid, CAST))
    for bad in ("../../etc/passwd", "not-a-uuid", sid.upper(), ""):
        with pytest.raises(BadParameter):
            upload(first, auth, chunks(bad, CAST))
    with pytest.raises(CompareFailed, match="SHA-256"):  # retryable: the node sends it again
        upload(first, auth, chunks(sid, CAST, offset=64 * 1024, sha="0" * 64))
    # The bad hash discarded the bytes: nothing half-kept; a clean upload completes.
    assert upload(first, auth, chunks(sid, CAST)).complete
    with pytest.raises(BadParameter, match="at most 256 KiB"):
        upload(first, auth, chunks(str(uuid.uuid4()), b"x" * 300 * 1024, size=300 * 1024))
    with auth.admin() as admin, pytest.raises(MeziteError):
        admin.rpc.UploadSessionRecording(chunks(str(uuid.uuid4()), CAST))  # not a node
    stored = sorted(p.name for p in (tmp_path / "data" / "recordings").iterdir())
    assert stored == [f"{sid}.cast"]  # the refused ones left no file, anywhere
    with auth.admin() as admin:
        listed = admin.rpc.ListSessionRecordings(pb.ListSessionRecordingsRequest()).recordings
        assert [r.session_id for r in listed] == [sid]
        with pytest.raises(BadParameter):
            play(admin, "../../../etc/shadow")


async def test_on_postgres_every_auth_server_reads_every_recording(postgres: object) -> None:
    from proto.clock import FakeClock
    from server.auth.stores.recordings import PostgresRecordingData, RecordingMeta, Recordings
    from server.backend.postgres import PostgresBackend

    dsn, clock = postgres.fresh_dsn(), FakeClock()  # type: ignore[attr-defined]
    sid = str(uuid.uuid4())
    async with PostgresBackend(dsn, clock) as one, PostgresBackend(dsn, clock) as two:
        first = Recordings(one, PostgresRecordingData(dsn))
        second = Recordings(two, PostgresRecordingData(dsn))
        try:
            meta = await first.begin(RecordingMeta(sid, "node-id", "web-1", "alice", "ubuntu", 1.0))
            stored = 0
            for offset in range(0, len(CAST), 100_000):
                stored = await first.data.append(sid, offset, CAST[offset : offset + 100_000])
            assert await first.data.append(sid, 0, b"stale") == stored  # only at the end
            await first.complete(meta, stored, await first.digest(sid))
            seen = await second.get(sid)
            assert seen is not None and seen.complete and seen.size == len(CAST)
            assert b"".join([c async for c in second.data.read(sid)]) == CAST
        finally:
            await first.data.close()
            await second.data.close()


def test_the_proxy_lists_and_streams_recordings_to_their_users(
    auth: RunningAuth, tmp_path: Path
) -> None:
    from cli.mez_recordings import play_cast
    from proto.cluster_api import WebClusterAPI
    from tests.integration.proxy_fixtures import proxy_for

    node = join_node(auth, tmp_path / "n1", "web-1")
    sid = str(uuid.uuid4())
    assert upload(node, auth, chunks(sid, CAST)).complete
    add_user(auth, "alice")
    add_user(auth, "bob")
    with proxy_for(auth, tmp_path / "tls") as proxy:
        ca, web = proxy.tls.ca_file.read_text(), proxy.base_url.removeprefix("https://")
        sessions = {}
        with auth.client() as anon:
            for name in ("alice", "bob"):
                request = pb.AuthenticateLocalRequest(username=name, password=PASSWORD)
                sessions[name] = anon.rpc.AuthenticateLocal(request).session_id
        alice = WebClusterAPI(web, ca, sessions["alice"])
        assert [r.session_id for r in alice.list_recordings("", "", 0.0)] == [sid]
        cast = alice.recording(sid)
        assert cast == CAST
        written: list[str] = []
        play_cast(cast, 1000.0, written.append, lambda _: None)
        assert written[0] == "line 0\r\n"
        bob = WebClusterAPI(web, ca, sessions["bob"])
        assert bob.list_recordings("", "", 0.0) == []
        with pytest.raises(NotFound):
            bob.recording(sid)
        with pytest.raises(BadParameter, match="UUID"):
            alice.recording("not-a-uuid")
        with pytest.raises((BadParameter, NotFound)):  # no route matches a path-like id
            alice.recording("..%2F..%2Fetc%2Fpasswd")
