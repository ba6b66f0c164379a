"""SearchAuditEvents (admins and auditors) and EmitAuditEvent (agents)."""

from __future__ import annotations

import json

from proto.clock import Clock
from proto.v1 import auth_pb2 as pb
from server.audit import AuditEvent, AuditLog
from server.auth.rpc.guard import require_roles
from server.auth.rpc.router import CallContext
from server.auth.stores.roles import AUDITOR_ROLE


def event_to_proto(event: AuditEvent) -> pb.AuditEvent:
    return pb.AuditEvent(
        id=event.id,
        type=event.type,
        code=event.code,
        time=event.time,
        user=event.user,
        session_id=event.session_id,
        fields_json=json.dumps(dict(event.fields), sort_keys=True),
        success=event.success,
    )


class AuditService:
    def __init__(self, log: AuditLog, clock: Clock) -> None:
        self._log = log
        self._clock = clock

    async def search_audit_events(
        self, request: pb.SearchAuditEventsRequest, ctx: CallContext
    ) -> pb.SearchAuditEventsResponse:
        require_roles(ctx.principal, AUDITOR_ROLE)
        events, next_token = await self._log.search(
            start=request.start,
            end=request.end or self._clock.now() + 1,
            types=list(request.types),
            user=request.user,
            limit=request.limit or 100,
            page_token=request.page_token,
            node=request.node,
            newest_first=request.newest_first,
        )
        return pb.SearchAuditEventsResponse(
            events=[event_to_proto(e) for e in events], next_page_token=next_token
        )
