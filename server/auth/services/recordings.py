"""Session recordings: UploadSessionRecording (a node, for its own sessions, resumable),
ListSessionRecordings and GetSessionRecording (admins and auditors: any; users: their
own). The uploading node is the one whose mTLS identity made the first chunk: another
node can neither add to nor replace it. A completed upload is audited as
``session.recording`` with its size, duration and SHA-256."""

from __future__ import annotations

import hashlib
import hmac
import logging
from typing import Any

from proto.errors import AccessDenied, BadParameter, CompareFailed, LimitExceeded, NotFound
from proto.kinds import AgentKind
from proto.v1 import auth_pb2 as pb
from server.auth.auditing import Auditor
from server.auth.rpc.guard import Principal, PrincipalKind
from server.auth.rpc.router import CallContext
from server.auth.stores.nodes import NodeCatalog
from server.auth.stores.recordings import RecordingMeta, Recordings, validate_session_id
from server.auth.stores.roles import ADMIN_ROLE, AUDITOR_ROLE

log = logging.getLogger(__name__)

MAX_CHUNK = 256 * 1024
MAX_RECORDING = 1024 * 1024 * 1024


def _info(meta: RecordingMeta) -> pb.RecordingInfo:
    return pb.RecordingInfo(
        session_id=meta.session_id, node_id=meta.node_id, node_name=meta.node_name,
        user=meta.user, login=meta.login, started=meta.started, ended=meta.ended,
        size=meta.size, sha256=meta.sha256, truncated=meta.truncated, complete=meta.complete,
    )  # fmt: skip


def _sees_all(principal: Principal) -> bool:
    return principal.is_admin or any(r in principal.roles for r in (ADMIN_ROLE, AUDITOR_ROLE))


class RecordingService:
    def __init__(self, recordings: Recordings, catalog: NodeCatalog, auditor: Auditor) -> None:
        self._recordings = recordings
        self._catalog = catalog
        self._audit = auditor

    async def upload_session_recording(self, stream: Any, ctx: CallContext) -> None:
        await ctx.send(await self._upload(ctx))

    async def _upload(self, ctx: CallContext) -> pb.RecordingUploadStatus:
        node = self._catalog.get(ctx.principal.name)
        if ctx.principal.agent_kind != AgentKind.NODE or node is None:
            raise AccessDenied("recordings are uploaded by the node that recorded them")
        chunk = await ctx.recv()
        if chunk is None:
            raise BadParameter("an upload needs at least one chunk")
        session_id = validate_session_id(chunk.session_id)
        meta = await self._recordings.get(session_id)
        if meta is None:
            info = chunk.info
            meta = await self._recordings.begin(RecordingMeta(
                session_id=session_id, node_id=node.id, node_name=node.name,
                user=info.user[:255], login=info.login[:64], started=info.started,
                ended=info.ended, truncated=info.truncated,
            ))  # fmt: skip
        if meta.node_id != node.id:
            self._audit.emit(
                "access.denied", user=node.id, success=False, node=node.name,
                reason="recording of another node's session", session=session_id,
            )  # fmt: skip
            raise AccessDenied(f"session {session_id} was recorded by another node")
        data = self._recordings.data
        stored = await data.size(session_id)
        if meta.complete:
            return pb.RecordingUploadStatus(stored=stored, complete=True)
        if chunk.offset != stored:
            return pb.RecordingUploadStatus(stored=stored)  # resume from here
        while chunk is not None:
            if chunk.session_id != session_id or chunk.offset != stored:
                raise BadParameter("chunks must follow one another in one recording")
            if len(chunk.data) > MAX_CHUNK:
                raise BadParameter(f"a chunk is at most {MAX_CHUNK // 1024} KiB")
            if stored + len(chunk.data) > MAX_RECORDING:
                raise LimitExceeded("a recording is at most 1 GiB")
            if chunk.data:
                stored = await data.append(session_id, stored, chunk.data)
            if chunk.last:
                return await self._finish(meta, stored, chunk.sha256, ctx)
            chunk = await ctx.recv()
        return pb.RecordingUploadStatus(stored=stored)

    async def _finish(
        self, meta: RecordingMeta, stored: int, claimed: str, ctx: CallContext
    ) -> pb.RecordingUploadStatus:
        actual = await self._recordings.digest(meta.session_id)
        if not hmac.compare_digest(actual, claimed.lower()):
            # What arrived is not what the node has: start over rather than keep it.
            await self._recordings.data.discard(meta.session_id)
            raise CompareFailed("the recording's SHA-256 does not match: upload it again")
        done = await self._recordings.complete(meta, stored, actual)
        self._audit.emit(
            "session.recording", user=done.user, node=done.node_name, session=done.session_id,
            login=done.login, size=done.size, sha256=done.sha256, truncated=done.truncated,
            duration=round(max(0.0, done.ended - done.started), 3), peer=ctx.peer_addr,
        )  # fmt: skip
        return pb.RecordingUploadStatus(stored=stored, complete=True)

    async def list_session_recordings(
        self, request: pb.ListSessionRecordingsRequest, ctx: CallContext
    ) -> pb.ListSessionRecordingsResponse:
        self._user_only(ctx.principal)
        everyone = _sees_all(ctx.principal)
        found = [
            m for m in await self._recordings.list()
            if m.complete and (everyone or m.user == ctx.principal.name)
            and (not request.user or m.user == request.user)
            and (not request.node or request.node in (m.node_name, m.node_id))
            and m.started >= request.since
        ]  # fmt: skip
        found.sort(key=lambda m: m.started, reverse=True)
        return pb.ListSessionRecordingsResponse(recordings=[_info(m) for m in found])

    async def get_session_recording(self, stream: Any, ctx: CallContext) -> None:
        request = await ctx.recv()
        self._user_only(ctx.principal)
        session_id = validate_session_id(request.session_id if request else "")
        meta = await self._recordings.get(session_id)
        mine = meta is not None and (_sees_all(ctx.principal) or meta.user == ctx.principal.name)
        if meta is None or not meta.complete or not mine:
            # One answer for missing and not yours: which it is tells a prober nothing.
            raise NotFound(f"no recording of session {session_id} that you may play")
        await ctx.send(pb.GetSessionRecordingResponse(info=_info(meta)))
        digest = hashlib.sha256()
        async for chunk in self._recordings.data.read(session_id):
            digest.update(chunk)
            await ctx.send(pb.GetSessionRecordingResponse(data=chunk))
        if digest.hexdigest() != meta.sha256:
            log.error("recording %s does not match its SHA-256 any more", session_id)

    @staticmethod
    def _user_only(principal: Principal) -> None:
        if principal.kind != PrincipalKind.USER and not principal.is_admin:
            raise AccessDenied("recordings are for users")
