"""The auth service's handle on the audit log: events stamped by the service's clock."""

from __future__ import annotations

from typing import Any

from proto.clock import Clock
from proto.event_types import EventType
from server.audit import AuditLog, new_event


class Auditor:
    def __init__(self, log: AuditLog, clock: Clock) -> None:
        self.log = log
        self._clock = clock

    def emit(self, type: EventType, *, user: str = "", success: bool = True, **fields: Any) -> None:
        self.log.emit(new_event(type, clock=self._clock, user=user, success=success, **fields))
