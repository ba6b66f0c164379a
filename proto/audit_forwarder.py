"""Audit events from an agent (a node, a proxy) to auth: buffered in memory and sent in
batches, kept and retried with backoff while auth is unreachable, dropped (and counted)
only when the buffer is full."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from proto.backoff import Backoff
from proto.client import AsyncAuthClient
from proto.errors import BadParameter
from proto.event_types import EventType

log = logging.getLogger(__name__)

MAX_BUFFER = 10_000
BATCH = 200
FLUSH_INTERVAL = 1.0


class AuditForwarder:
    """Implements the SSH server's AuditSink."""

    def __init__(self, client: Callable[[], AsyncAuthClient]) -> None:
        self._client = client
        self._buffer: deque[Any] = deque()
        self._wakeup = asyncio.Event()
        self.dropped = 0
        self.sent = 0

    def emit(
        self,
        type: EventType,
        *,
        user: str = "",
        success: bool = True,
        session_id: str = "",
        **fields: Any,
    ) -> None:
        from proto.v1 import auth_pb2 as pb

        if len(self._buffer) >= MAX_BUFFER:
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.error("audit buffer full: %d events dropped so far", self.dropped)
            return
        self._buffer.append(
            pb.AuditEvent(
                type=type,
                time=time.time(),
                user=user,
                session_id=session_id,
                success=success,
                fields_json=json.dumps(fields, default=str),
            )
        )
        if len(self._buffer) >= BATCH:
            self._wakeup.set()

    async def _send(self) -> None:
        from proto.v1 import auth_pb2 as pb

        while self._buffer:
            batch = [self._buffer[i] for i in range(min(BATCH, len(self._buffer)))]
            try:
                await self._client().rpc.EmitAuditEvent(pb.EmitAuditEventRequest(events=batch))
            except BadParameter as err:
                # Retrying a batch auth refuses would block every event behind it.
                log.error("auth refused %d audit events: %s", len(batch), err.message)
                self.dropped += len(batch)
            for _ in batch:
                self._buffer.popleft()
            self.sent += len(batch)

    async def run(self) -> None:
        backoff = Backoff(base=0.5, cap=30.0)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), FLUSH_INTERVAL)
            self._wakeup.clear()
            try:
                await self._send()
                backoff.reset()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = backoff.next()
                log.warning("cannot send %d audit events (%s); retry in %.1fs",
                            len(self._buffer), exc, delay)  # fmt: skip
                await asyncio.sleep(delay)

    async def flush(self, within: float = 5.0) -> None:
        """Best effort on shutdown."""
        try:
            await asyncio.wait_for(self._send(), within)
        except Exception as exc:
            log.warning("%d audit events not delivered at shutdown: %s", len(self._buffer), exc)
